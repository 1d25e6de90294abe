"""Synthetic retail credit data with a known data-generating process.

Used by the demo, the tests and the benchmarks; never by a real submission.
Everything is vectorised numpy, so a million rows take a few seconds.

Data-generating process (one row = one applicant; ``U`` uniform, ``N`` normal):

- ``sex``: ``"female"`` or ``"male"``, probability 1/2 each (protected).
- ``age``: ``N(42, 12)`` clipped to [18, 85], whole years; ``age_band`` is
  ``"18-29"``, ``"30-44"``, ``"45-59"`` or ``"60+"`` (protected).
- ``employment_years``: ``Gamma(2, 3.5)`` capped at ``age - 16``, one decimal.
- ``income``: lognormal, ``log income ~ N(10.7 + 0.005 employment_years, 0.45)``,
  whole currency units.
- ``debt_to_income``: ``Beta(2, 5) * 1.2``.
- ``credit_utilisation``: ``Beta(1.6, 2.6)``.
- ``delinquencies_2y``: ``Poisson(0.25)``.
- ``months_since_last_delinquency``: ``U{0..23}`` when ``delinquencies_2y > 0``,
  else drawn from ``U{24..120}`` (no recent delinquency).
- ``open_accounts``: ``Poisson(6)``; ``inquiries_6m``: ``Poisson(0.8)``.
- ``loan_amount``: ``income * Beta(2, 8) * 1.5`` rounded to 10 units.
- ``postcode_risk``: ``U(0, 1)``, an area score unrelated to default (unless
  ``biased``).
- ``noise_1 .. noise_k``: ``N(0, 1)`` columns without signal (``extra_features``).

The target ``default`` is Bernoulli with::

    logit p = -2.75 - 1.1 (log income - 10.75) / 0.46
              + 1.32 (debt_to_income - 0.34) / 0.19 + 1.4 (credit_utilisation - 0.38)
              + 0.55 delinquencies_2y - 0.02 (employment_years - 7)
              + 0.18 (inquiries_6m - 0.8) + 0.35 (loan_amount / income - 0.3) / 0.18

The default rate is about 16 %; a gradient-boosted model trained on 20,000
rows reaches an AUC of about 0.87 and a KS of about 0.58 on held-out rows, and
approves every sex and age band at more than four fifths of the best rate.

``realistic=True`` adds what application data looks like: three categorical
columns (pandas ``category`` dtype, categories in the order below) and
missing values that mean something. The draws above are unchanged (the new
ones come from a second generator seeded by ``seed``); only the label moves,
by the added terms below.

- ``housing`` (:data:`HOUSING`): ``own`` 25 %, ``mortgage`` 38 %, ``rent``
  30 %, ``other`` (living with family, ...) 7 %.
- ``loan_purpose`` (:data:`LOAN_PURPOSES`): ``car`` 22 %, ``education`` 8 %,
  ``home_improvement`` 15 %, ``debt_consolidation`` 35 %, ``business`` 7 %,
  ``other`` 13 %.
- ``employment_type`` (:data:`EMPLOYMENT_TYPES`): ``retired`` with
  probability 1/2 from age 60, ``student`` with probability 0.15 under 30,
  else ``employed`` 80 %, ``self_employed`` 14 %, ``unemployed`` 6 %.
- ``months_since_last_delinquency`` is missing for applicants never
  delinquent: of those without a delinquency in two years, 30 % had an older
  one (``U{24..120}`` as above), the other 70 % never had one (about 55 % of
  all rows are missing).
- ``income`` is missing where it was not verified: 12 % of the self-employed,
  2 % of the others (about 3 % of rows).
- ``employment_years`` is missing where the applicant did not state it, 3 %
  of rows at random (no effect on default).

The categories do not depend on sex, and on age only through retirement and
study (whose effects are close to the average of the others), so they are no
proxy for a protected attribute. Terms added to the logit::

    + housing {own -0.25, mortgage 0, rent +0.35, other +0.2}
    + loan_purpose {car -0.2, education +0.1, home_improvement -0.25,
                    debt_consolidation +0.25, business +0.5, other 0}
    + employment_type {employed 0, self_employed +0.2, unemployed +1.0,
                       retired +0.1, student +0.2}
    + 0.3 (an older delinquency) + 0.35 (income not verified) - 0.27

The default rate stays about 16 %. The fair candidate of
:func:`write_candidate` (10,000 training rows) reaches an AUC of about 0.86
on held-out rows. With 40,000 validation rows, as in the demo, it passes
every blocking gate of ``credit-risk@1``; with 10,000 the smallest
intersection groups (women over 60: about 350 rows, 50 defaults) leave the
equalized odds difference mostly sampling noise, over 0.10 for most seeds.

``biased=True`` switches on a known, unlawful bias: the label of female
applicants gets ``+2.6`` on the logit (as if historic decisions had been
harsher on them), and ``postcode_risk`` becomes a proxy for sex
(``0.75 * female + 0.25 * U(0, 1)``). A model trained on it learns the proxy
and approves women at well under four fifths of the men's rate at a cutoff of
0.5, so the fairness gate's adverse impact ratio fails. The categorical
columns and the missing values do not depend on sex, with or without the bias.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

TARGET = "default"
PROTECTED: tuple[str, ...] = ("sex", "age_band")
BASE_FEATURES: tuple[str, ...] = (
    "income",
    "debt_to_income",
    "credit_utilisation",
    "delinquencies_2y",
    "months_since_last_delinquency",
    "employment_years",
    "age",
    "open_accounts",
    "inquiries_6m",
    "loan_amount",
    "postcode_risk",
)
HOUSING: tuple[str, ...] = ("own", "mortgage", "rent", "other")
LOAN_PURPOSES: tuple[str, ...] = (
    "car",
    "education",
    "home_improvement",
    "debt_consolidation",
    "business",
    "other",
)
EMPLOYMENT_TYPES: tuple[str, ...] = (
    "employed",
    "self_employed",
    "unemployed",
    "retired",
    "student",
)
# The categorical columns of ``realistic`` data, each with its categories in code order.
CATEGORIES: dict[str, tuple[str, ...]] = {
    "housing": HOUSING,
    "loan_purpose": LOAN_PURPOSES,
    "employment_type": EMPLOYMENT_TYPES,
}
CATEGORICAL_FEATURES: tuple[str, ...] = tuple(CATEGORIES)
MAX_FEATURES = 20
# The relations the model must respect (the default policy declares them).
MONOTONE: dict[str, str] = {
    "income": "decreasing",
    "debt_to_income": "increasing",
    "credit_utilisation": "increasing",
    "delinquencies_2y": "increasing",
}
AGE_BANDS: tuple[str, ...] = ("18-29", "30-44", "45-59", "60+")
# Effects on the logit of default (see the module docstring).
_HOUSING_SHARES = (0.25, 0.38, 0.30, 0.07)
_HOUSING_EFFECT = (-0.25, 0.0, 0.35, 0.2)
_PURPOSE_SHARES = (0.22, 0.08, 0.15, 0.35, 0.07, 0.13)
_PURPOSE_EFFECT = (-0.2, 0.1, -0.25, 0.25, 0.5, 0.0)
_EMPLOYMENT_EFFECT = (0.0, 0.2, 1.0, 0.1, 0.2)


def feature_names(extra_features: int = 0, *, realistic: bool = False) -> list[str]:
    """The model features of :func:`make_credit_data` with ``extra_features`` noise columns
    (with ``realistic``, the categorical columns come after the base features)."""
    categorical = CATEGORICAL_FEATURES if realistic else ()
    return [*BASE_FEATURES, *categorical, *(f"noise_{i + 1}" for i in range(extra_features))]


def make_credit_data(
    n_rows: int,
    *,
    seed: int = 0,
    biased: bool = False,
    extra_features: int = 0,
    realistic: bool = False,
) -> pd.DataFrame:
    """``n_rows`` synthetic applicants drawn from the process in the module docstring.

    With ``realistic``, the categorical columns (pandas ``category`` dtype) and
    the meaningful missing values are added.
    """
    import numpy as np
    import pandas as pd

    if n_rows < 1:
        raise ValueError(f"n_rows must be at least 1, got {n_rows}")
    most = MAX_FEATURES - len(feature_names(realistic=realistic))
    if not 0 <= extra_features <= most:
        raise ValueError(
            f"extra_features must be in 0..{most} (at most {MAX_FEATURES} features), "
            f"got {extra_features}"
        )
    rng = np.random.default_rng(seed)
    n = n_rows
    female = rng.random(n) < 0.5
    age = np.clip(np.rint(rng.normal(42.0, 12.0, n)), 18, 85)
    employment = np.round(np.minimum(rng.gamma(2.0, 3.5, n), age - 16.0), 1)
    log_income = rng.normal(10.7 + 0.005 * employment, 0.45, n)
    income = np.rint(np.exp(log_income))
    dti = rng.beta(2.0, 5.0, n) * 1.2
    util = rng.beta(1.6, 2.6, n)
    delinq = rng.poisson(0.25, n)
    recent = rng.integers(0, 24, n)
    old = rng.integers(24, 121, n)
    months_since = np.where(delinq > 0, recent, old)
    open_accounts = rng.poisson(6.0, n)
    inquiries = rng.poisson(0.8, n)
    loan_amount = np.round(income * rng.beta(2.0, 8.0, n) * 1.5, -1)
    area = rng.random(n)
    postcode_risk = np.where(female, 0.75, 0.0) + 0.25 * area if biased else area
    band_index = np.searchsorted(np.array([30.0, 45.0, 60.0]), age, side="right")

    z_income = (log_income - 10.75) / 0.46
    logit = (
        -2.75
        - 1.1 * z_income
        + 1.32 * (dti - 0.34) / 0.19
        + 1.4 * (util - 0.38)
        + 0.55 * delinq
        - 0.02 * (employment - 7.0)
        + 0.18 * (inquiries - 0.8)
        + 0.35 * (loan_amount / income - 0.3) / 0.18
    )
    realistic_columns: dict[str, object] = {}
    if realistic:
        more = _realistic(np.random.default_rng([seed, 1]), age, delinq)
        logit = logit + more["logit"]
        months_since = np.where(more["never_delinquent"], np.nan, months_since)
        income_shown = np.where(more["income_unverified"], np.nan, income)
        employment_shown = np.where(more["employment_unstated"], np.nan, employment)
        for name, codes in more["codes"].items():
            realistic_columns[name] = pd.Categorical.from_codes(codes, categories=CATEGORIES[name])
    else:
        income_shown, employment_shown = income, employment
    if biased:
        logit = logit + 2.6 * female
    default = (rng.random(n) < 1.0 / (1.0 + np.exp(-logit))).astype(np.int64)

    columns: dict[str, object] = {
        "income": income_shown,
        "debt_to_income": np.round(dti, 4),
        "credit_utilisation": np.round(util, 4),
        "delinquencies_2y": delinq.astype(np.int64),
        # float where missing values are possible, as pandas reads them back
        "months_since_last_delinquency": months_since.astype(np.float64 if realistic else np.int64),
        "employment_years": employment_shown,
        "age": age.astype(np.int64),
        "open_accounts": open_accounts.astype(np.int64),
        "inquiries_6m": inquiries.astype(np.int64),
        "loan_amount": loan_amount,
        "postcode_risk": np.round(postcode_risk, 4),
        **realistic_columns,
    }
    for i in range(extra_features):
        columns[f"noise_{i + 1}"] = np.round(rng.normal(0.0, 1.0, n), 4)
    columns["sex"] = np.where(female, "female", "male")
    columns["age_band"] = np.array(AGE_BANDS)[band_index]
    columns[TARGET] = default
    return pd.DataFrame(columns)


def _realistic(rng: Any, age: Any, delinq: Any) -> dict[str, Any]:
    """The draws ``realistic=True`` adds: category codes, missing-value masks, logit terms."""
    import numpy as np

    n = age.shape[0]

    def pick(shares: Any) -> Any:
        """One category code per row from per-row (n, k) or shared (k,) shares."""
        cumulative = np.cumsum(np.broadcast_to(shares, (n, len(shares[-1]))), axis=1)
        return (rng.random((n, 1)) > cumulative[:, :-1]).sum(axis=1)

    housing = pick(np.array([_HOUSING_SHARES]))
    purpose = pick(np.array([_PURPOSE_SHARES]))
    employment = pick(np.array([(0.80, 0.14, 0.06)]))  # employed, self-employed, unemployed
    u = rng.random(n)
    employment = np.where(
        (age >= 60) & (u < 0.5), 3, np.where((age < 30) & (u < 0.15), 4, employment)
    )
    older_delinquency = (delinq == 0) & (rng.random(n) < 0.3)
    never_delinquent = (delinq == 0) & ~older_delinquency
    self_employed = employment == 1
    income_unverified = rng.random(n) < np.where(self_employed, 0.12, 0.02)
    employment_unstated = rng.random(n) < 0.03
    logit = (
        np.array(_HOUSING_EFFECT)[housing]
        + np.array(_PURPOSE_EFFECT)[purpose]
        + np.array(_EMPLOYMENT_EFFECT)[employment]
        + 0.3 * older_delinquency
        + 0.35 * income_unverified
        - 0.27
    )
    return {
        "codes": {"housing": housing, "loan_purpose": purpose, "employment_type": employment},
        "never_delinquent": never_delinquent,
        "income_unverified": income_unverified,
        "employment_unstated": employment_unstated,
        "logit": logit,
    }


def with_category_dtypes(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its categorical columns (:data:`CATEGORIES`) as pandas ``category``
    dtype in the generator's category order, as LightGBM's pandas path needs them
    (a CSV reads them back as text). Other columns are left as they are."""
    import pandas as pd

    out = frame.copy(deep=False)
    for name, categories in CATEGORIES.items():
        if name in out.columns:
            out[name] = out[name].astype(pd.CategoricalDtype(list(categories)))
    return out


def train_lightgbm(
    df: pd.DataFrame,
    *,
    target: str = TARGET,
    features: list[str] | None = None,
    seed: int = 0,
    num_boost_round: int = 100,
    monotone: dict[str, str] | None = None,
) -> str:
    """Train a deterministic LightGBM binary classifier; return its native text model.

    ``features`` defaults to every numeric and every pandas ``category`` column
    except the target and the protected attributes. Category columns are
    LightGBM categorical features (its pandas path: the model records their
    categories); missing values are LightGBM's missing values. ``monotone``
    maps a feature to ``"increasing"`` or ``"decreasing"`` (predicted default
    must rise / fall with it).
    """
    import numpy as np
    import pandas as pd

    from core.lgbm import import_lightgbm

    lgb = import_lightgbm()

    def categorical(col: Any) -> bool:
        return isinstance(df[col].dtype, pd.CategoricalDtype)

    if features is None:
        features = [
            str(col)
            for col in df.columns
            if col != target
            and col not in PROTECTED
            and (pd.api.types.is_numeric_dtype(df[col]) or categorical(col))
        ]
    monotone = monotone or {}
    unknown = sorted(set(monotone) - set(features))
    if unknown:
        raise ValueError(f"monotone constraints name features the model does not use: {unknown}")
    signs = {"increasing": 1, "decreasing": -1}
    constraints = [signs[monotone[f]] if f in monotone else 0 for f in features]
    params: dict[str, object] = {
        "objective": "binary",
        "learning_rate": 0.1,
        "num_leaves": 15,
        "min_data_in_leaf": 40,
        "feature_fraction": 1.0,
        "bagging_fraction": 1.0,
        "lambda_l2": 1.0,
        "seed": seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": 1,
        "verbose": -1,
    }
    label = df[target].to_numpy(dtype=np.float64)
    if any(constraints):
        params["monotone_constraints"] = constraints
        # With missing values in the features, LightGBM 4.7's "advanced" and
        # "intermediate" methods break their constraints (rows whose monotone or other
        # features are missing see the prediction move the wrong way); "basic" keeps them.
        missing = bool(df[features].isna().to_numpy().any())
        params["monotone_constraints_method"] = "basic" if missing else "advanced"
    if any(categorical(f) for f in features):
        # LightGBM's pandas path: category columns become categorical features.
        data = lgb.Dataset(df[features], label=label, free_raw_data=True)
    else:
        data = lgb.Dataset(
            df[features].to_numpy(dtype=np.float64),
            label=label,
            feature_name=features,
            free_raw_data=True,
        )
    booster = lgb.train(params, data, num_boost_round=num_boost_round)
    text: str = booster.model_to_string()
    return text


# Adverse-action reason texts for every feature of :func:`make_credit_data`.
REASON_TEXTS: dict[str, str] = {
    "income": "Income insufficient for the amount of credit requested",
    "debt_to_income": "Debt obligations too high relative to income",
    "credit_utilisation": "Proportion of revolving balances to credit limits is too high",
    "delinquencies_2y": "Delinquent past or present credit obligations",
    "months_since_last_delinquency": "Time since last delinquency is too short",
    "employment_years": "Length of employment",
    "age": "Age of the applicant (scored only as Regulation B permits)",
    "open_accounts": "Number of established credit accounts",
    "inquiries_6m": "Number of recent credit inquiries",
    "loan_amount": "Amount of credit requested relative to income",
    "postcode_risk": "Area risk score",
}
# Reason texts of the categorical columns of ``realistic`` data: a default text and
# texts for the categories that raise the predicted default.
CATEGORY_REASON_TEXTS: dict[str, dict[str, Any]] = {
    "housing": {
        "default": "Housing status",
        "categories": {
            "rent": "Renting rather than owning or buying a home",
            "other": "No established residence of your own",
        },
    },
    "loan_purpose": {
        "default": "Purpose of the loan",
        "categories": {
            "business": "Credit requested for business purposes",
            "debt_consolidation": "Credit requested to consolidate existing debts",
            "education": "Credit requested for education",
        },
    },
    "employment_type": {
        "default": "Employment status",
        "categories": {
            "unemployed": "No current employment",
            "self_employed": "Self-employed income",
            "student": "No established employment income",
        },
    },
}
# Left out of a fair candidate: age (restricted in credit decisions) and the
# area score (a proxy for sex when ``biased``).
UNFAIR: tuple[str, ...] = ("age", "postcode_risk")


def reason_texts(*, realistic: bool = False) -> dict[str, Any]:
    """Reason texts for every feature (with ``realistic``, per category where it counts)."""
    texts: dict[str, Any] = dict(REASON_TEXTS)
    if realistic:
        texts.update(CATEGORY_REASON_TEXTS)
    return texts


def write_candidate(
    root: Path,
    *,
    rows: int = 10000,
    validation_rows: int | None = None,
    seed: int = 7,
    biased: bool = False,
    validation_format: str = "csv",
    train_format: str = "csv",
    realistic: bool = False,
) -> dict[str, Path]:
    """Train a candidate and write what a submission needs into ``root``.

    Returns the paths ``artifact``, ``train``, ``validation`` and ``reasons``
    (JSON). With the defaults the candidate passes every gate of
    ``credit-risk@1`` (seeded and deterministic). With ``biased=True`` it uses
    every column, the proxy for sex included, and fails the fairness gate.
    Both respect the :data:`MONOTONE` relations. With ``realistic=True`` (the
    demo's candidates) the data has the categorical columns and missing values
    (the model uses the categories; a CSV holds them as text, a Parquet file
    as ``category`` columns) and the reasons give texts per category; with
    ``validation_rows=40000`` (the demo's) the fair candidate passes every
    blocking gate (the fairness gate warns: the equalized odds interval of the
    smallest intersection reaches above 0.10), and ``biased=True`` fails the
    fairness gate only.
    """
    import json

    for fmt in (train_format, validation_format):
        if fmt not in ("csv", "parquet"):
            raise ValueError(f"write_candidate writes csv or parquet, not {fmt!r}")
    root.mkdir(parents=True, exist_ok=True)
    size = rows + (rows if validation_rows is None else validation_rows)
    frame = make_credit_data(size, seed=seed, biased=biased, realistic=realistic)
    train, validation = frame.iloc[:rows], frame.iloc[rows:]
    features = (
        None if biased else [f for f in feature_names(realistic=realistic) if f not in UNFAIR]
    )
    paths = {
        "artifact": root / "model.txt",
        "train": root / f"train.{train_format}",
        "validation": root / f"validation.{validation_format}",
        "reasons": root / "reasons.json",
    }
    paths["artifact"].write_text(
        train_lightgbm(train, features=features, monotone=MONOTONE, seed=seed), encoding="utf-8"
    )
    for part, path in ((train, paths["train"]), (validation, paths["validation"])):
        if path.suffix == ".parquet":
            part.to_parquet(path, index=False)
        else:
            part.to_csv(path, index=False)
    texts = reason_texts(realistic=realistic)
    paths["reasons"].write_text(json.dumps(texts, indent=2), encoding="utf-8")
    return paths


def log_to_mlflow(
    model_text: str,
    *,
    tracking_uri: str,
    experiment: str = "govreg-synthetic",
    params: dict[str, str] | None = None,
    metrics: dict[str, float] | None = None,
    source_commit: str | None = None,
    register_as: str | None = None,
) -> dict[str, str]:
    """Log a LightGBM text model to MLflow as a data scientist would, in a new run.

    The model is logged with ``mlflow.lightgbm.log_model`` and explicit pip
    requirements (MLflow otherwise infers them, which costs about 3 s a
    model). Returns ``run_id``, ``experiment_id``, ``runs_uri`` and, with
    ``register_as``, ``models_uri`` of the new registered version. MLflow's
    telemetry stays off unless the user turned it on.
    """
    import mlflow

    from core.lgbm import import_lightgbm
    from govreg.settings import apply_mlflow_defaults

    lightgbm = import_lightgbm()

    apply_mlflow_defaults()
    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    # the fluent API (log_model) works on the process-wide URIs: set them for this call only
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    try:
        with mlflow.start_run(experiment_id=experiment_id) as run:
            if params:
                mlflow.log_params(params)
            if metrics:
                mlflow.log_metrics(metrics)
            if source_commit:
                mlflow.set_tag("mlflow.source.git.commit", source_commit)
            mlflow.lightgbm.log_model(
                lightgbm.Booster(model_str=model_text),
                name="model",
                pip_requirements=[f"lightgbm=={lightgbm.__version__}"],
            )
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])
    out = {
        "run_id": run.info.run_id,
        "experiment_id": str(experiment_id),
        "runs_uri": f"runs:/{run.info.run_id}/model",
    }
    if register_as:
        from mlflow.exceptions import MlflowException

        try:
            client.create_registered_model(register_as)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        logged = client.search_logged_models(
            experiment_ids=[str(experiment_id)], filter_string="name = 'model'"
        )
        model_id = next(m.model_id for m in logged if m.source_run_id == run.info.run_id)
        # the storage location, not "models:/<model_id>": MLflow's SQL registry store
        # resolves such a source through the process-wide tracking URI
        location = client.get_logged_model(model_id).artifact_location
        version = client.create_model_version(
            register_as, location, run_id=run.info.run_id, model_id=model_id
        )
        out["models_uri"] = f"models:/{register_as}/{version.version}"
    return out

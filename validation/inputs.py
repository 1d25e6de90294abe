"""What the gates measure: the candidate model and its data, with cached predictions."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import TYPE_CHECKING, Any

from core.errors import InputError
from core.lgbm import import_lightgbm
from core.model_text import check_model_text, token

if TYPE_CHECKING:
    import lightgbm
    import numpy as np
    import numpy.typing as npt
    import pandas as pd

    from validation.contract import DataContract

    FloatArray = npt.NDArray[np.float64]
    IntArray = npt.NDArray[np.int64]


@dataclass(eq=False)
class GateInputs:
    """A candidate: LightGBM native text model, training and validation frames, context.

    ``protected`` names the protected attribute columns (present in the
    frames, not model features); ``cutoff`` is the policy's decision cutoff
    (approved means predicted default < cutoff); ``reason_texts`` maps a
    feature to its adverse-action reason text; ``schema_suite`` is an optional
    great-expectations suite (its JSON form) replacing the derived one;
    ``recorded_contract`` is the submission's data contract (derived from the
    model and the training data when absent).
    Predictions are computed once and shared by all gates.
    """

    model_text: str
    train: pd.DataFrame
    validation: pd.DataFrame
    target: str
    protected: list[str] = field(default_factory=list)
    cutoff: Decimal = Decimal("0.5")
    reason_texts: dict[str, Any] = field(default_factory=dict)
    schema_suite: dict[str, Any] | None = None
    recorded_contract: DataContract | None = None

    @cached_property
    def booster(self) -> lightgbm.Booster:
        """The parsed model; a model that does not parse is an :class:`InputError`.

        The stored bytes passed submission's checks; they are parsed in this
        process, after the structural check of :mod:`core.model_text` again.
        """
        if not self.model_text.strip():
            raise InputError("the model text is empty")
        check_model_text(self.model_text.encode("utf-8"), subject="the model")
        lgb = import_lightgbm()
        try:
            booster: lightgbm.Booster = lgb.Booster(model_str=self.model_text)
        except lgb.basic.LightGBMError as exc:
            # LightGBM's message can quote the file; only a short escaped piece is kept.
            raise InputError(
                f"the model does not load as a LightGBM model (LightGBM says {token(str(exc), 80)})"
            ) from None
        return booster

    @cached_property
    def features(self) -> list[str]:
        """The model's feature names, in the model's order."""
        names: list[str] = list(self.booster.feature_name())
        return names

    @cached_property
    def contract(self) -> DataContract:
        """The data contract: the submission's, else derived from the model and training data."""
        from validation.contract import derive

        if self.recorded_contract is not None:
            return self.recorded_contract
        return derive(self.model_text, self.train, source="the training data")

    def matrix(self, frame: pd.DataFrame, *, name: str) -> FloatArray:
        """``frame``'s model features as the model takes them (:meth:`DataContract.encode`):
        numbers as floats, categories as the model's codes, missing as NaN."""
        contract = self.contract
        missing = [f for f in contract.names if f not in frame.columns]
        if missing:
            raise InputError(f"the {name} data lacks model feature columns {missing}")
        contract.check_frame(frame, source=f"the {name} data")
        return contract.encode(frame, where=f"{name} data")

    @cached_property
    def x_validation(self) -> FloatArray:
        return self.matrix(self.validation, name="validation")

    @cached_property
    def x_train(self) -> FloatArray:
        return self.matrix(self.train, name="training")

    @cached_property
    def pred_validation(self) -> FloatArray:
        """Predicted probability of default on the validation rows."""
        import numpy as np

        if len(self.validation) == 0:
            raise InputError("the validation data has no rows")
        pred: FloatArray = np.asarray(self.booster.predict(self.x_validation), dtype=np.float64)
        return pred

    @cached_property
    def pred_train(self) -> FloatArray:
        """Predicted probability of default on the training rows."""
        import numpy as np

        if len(self.train) == 0:
            raise InputError("the training data has no rows")
        pred: FloatArray = np.asarray(self.booster.predict(self.x_train), dtype=np.float64)
        return pred

    @cached_property
    def y_validation(self) -> IntArray:
        """The validation labels as 0/1 integers; anything else is refused."""
        import numpy as np

        if self.target not in self.validation.columns:
            raise InputError(f"the validation data lacks the target column '{self.target}'")
        column = self.validation[self.target]
        if column.isna().any():
            raise InputError(f"the target column '{self.target}' has missing values")
        y: IntArray = column.to_numpy().astype(np.int64)
        if not np.isin(y, (0, 1)).all():
            raise InputError(f"the target column '{self.target}' must hold only 0 and 1")
        return y

from govreg.cli import main

main()

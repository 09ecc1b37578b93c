from edgecnn.cli.main import main

main()

from batchrun.cli.main import entry

entry()

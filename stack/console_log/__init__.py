"""console-log: the Alertmanager receiver's sink (see receiver.py). Standard library only."""

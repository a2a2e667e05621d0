"""What touches the disk: the journal writer, the lock, the run's workspace, sources and snapshots,
saved plan files. Imports only migrator.core.
"""

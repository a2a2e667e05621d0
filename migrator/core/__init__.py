"""The pure core: documents, versions, remapping, planning, retry and pacing math, journal records,
the report model, config parsing and redaction. No await, no sockets, no database; clock passed in.
"""

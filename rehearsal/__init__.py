"""A rehearsal of the `full` preset on this machine: the real code path against local stand-ins.

`make rehearse` (``python -m rehearsal.run``) builds stand-ins for every external file in the download
table (same names, formats and sizes, random contents), serves them from an HTTP mirror on 127.0.0.1,
and runs notebooks 01-07 with ``--preset full`` capped to a few steps per phase. Nothing here is imported
by `helpers`: the notebooks only see the mirror's address and its hash manifest (environment variables
that `helpers.data.downloads` documents) and a Hugging Face cache folder.
"""

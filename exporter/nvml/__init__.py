"""NVML through pynvml: initialisation (``session``), fault-tolerant calls (``calls``), GPM (``gpm``) and the reader
that turns one scrape's calls into a ``Snapshot`` (``reader``)."""

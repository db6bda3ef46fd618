"""kubetune trainer: the code FineTuneJob pods run (and `kubetune train`)."""

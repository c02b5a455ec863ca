"""What `agentvine doctor` checks, one concern a module: the settings and the App's credentials
(settings.py), GitHub and the model API (remote.py), the Docker engine (engine.py), the data
directory's disk and database (host.py). Each check takes the `Context` the earlier ones filled in
and gives one `CheckResult` (result.py); none raises."""

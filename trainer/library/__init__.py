"""ntc-library: compress a whole material library, one Ray task per material (cli.py); finding
the materials (discover.py), each material's job and its resumable outputs (jobs.py), running
them on Ray (cluster.py) and the library's report (report.py)."""

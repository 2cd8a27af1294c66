"""`python -m serve_app.serve`: the standalone OpenAI-compatible endpoint (README). Its flags live
with the other entry points, in ray_jobs.serve; this entry runs that module by name, so that no
import points from the Serve library up into the job (ray_jobs uses serve_app, never the reverse)."""

import runpy

if __name__ == "__main__":
    runpy.run_module("ray_jobs.serve", run_name="__main__", alter_sys=True)

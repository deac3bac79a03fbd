"""`edge-mtl study`: does one tri-task network earn its place? Three single-task models against
the tri-task model under every weighting strategy, a grid of fixed weights and random weighting,
and a missing-label ablation, at one budget and over several seeds; Delta m, cost, a Pareto plot.

plan.py   the runs (what each one overrides in the base config)
runner.py trains and evaluates one run in a child process (resumable; peak memory via wait4)
cost.py   parameters, FLOPs and onnxruntime latency of the tri-task and single-task networks
report.py Delta m, the markdown / JSON report and the Pareto plot
"""

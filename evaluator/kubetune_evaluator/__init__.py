"""kubetune evaluator: the code EvalJob pods run (and `kubetune eval`, `kubetune score`)."""

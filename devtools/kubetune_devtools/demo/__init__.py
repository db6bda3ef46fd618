"""The end-to-end demo (`kubetune demo`, docs/demo.md): real text that ships with Python, turned into
instruction tasks, fine-tuned and evaluated by the operator on the local stack.

What lives here: the plan (`plan`: names, sizes, URIs), the inputs (`stdlib_docs`, `assets`: the dataset
and the base model on MinIO), the cluster steps (`cluster`: Helm release, namespaces, jobs), the run
(`flow`), what it shows (`progress_view`, `results_table` and the like), and `local_node`, a local-stack
quirk it works around.
What must not: anything the product needs; the demo drives the operator only through its API objects.
"""

"""The end-to-end demo (`kubetune demo`, docs/demo.md): real text that ships with Python, turned into
instruction tasks, fine-tuned and evaluated by the operator on the local stack.

What lives here: the plan (`plan`: names, sizes, URIs), the inputs (`stdlib_docs`, `assets`: the dataset
and the base model on MinIO), the cluster steps (`cluster`: Helm release, namespaces, jobs), the run
(`flow`) and what it shows (`progress_view`, `results_table` and the like). Its pods run inside the
project's images (`make images`), as on a cluster.
What must not: anything the product needs; the demo drives the operator only through its API objects.
"""

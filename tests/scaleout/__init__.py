"""Scale-out: replica processes behind routers, robots placing themselves and failing over."""

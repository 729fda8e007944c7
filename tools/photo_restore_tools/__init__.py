"""Developer and operator tooling beside the domain package: the `photo-restore` CLI, the local
stack (embedded Postgres, moto, the SiliconFlow stand-in) and redrive. Never shipped to Lambda."""

"""The platform at run time: the composition root (``bootstrap``), the service façade
(``service``), the scheduler's lock (``gate``), moves with their effects (``transitions``), the
loop (``reconciler``) and start-up after a crash (``recovery``)."""

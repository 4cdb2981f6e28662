"""The platform's domain model (pure data, no I/O): names, resources, job specs, templates,
configuration, admissions, the job state machine with its transition effects, and the access
rules."""

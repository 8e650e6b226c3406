"""Running studies: the plan resolved once per execution, pre-flight checks against the data,
Ray, Tuner assembly, the driver's callbacks, finalize, resume, reproduce and lr-find."""

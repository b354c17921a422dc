"""What a student reads when the job runner, not their data, ends a job."""

CRASHED = ("The training process stopped unexpectedly {times} (most often it ran out of memory). "
           "Try fewer rows, a smaller max_length or batch_size, or ask your instructor.")
TIMED_OUT = ("The job ran longer than this class's limit of {minutes:g} minutes and was stopped. Try fewer rows "
             "or epochs, or fewer layers.")
START_FAILED = ("The training process could not start on {host} ({why}); the server's data directory or resources "
                "need your instructor. Submit again later.")
INTERNAL = ("TinyTutor hit an internal error while training (job {job_id}). It has been logged; "
            "your instructor can look it up. Trying again with other settings may work.")

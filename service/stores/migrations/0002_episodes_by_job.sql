-- A job claims the unfinished episodes that name it, and absorbs those of waiting jobs.
CREATE INDEX episodes_unfinished_job ON episodes (job_id) WHERE status IN ('queued', 'processing');

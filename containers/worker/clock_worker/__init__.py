"""The clock worker sidecar.

Every interval it reads the task's `ClockDrift` from the task metadata endpoint,
turns it into metrics (reported bound, effective bound, synchronization, reference
age, failed samples, and the app's gate counters) and publishes them to CloudWatch,
either as Embedded Metric Format lines on stdout or through PutMetricData. It can also
run extra commands on cron schedules. Run it as `python -m clock_worker`.
"""

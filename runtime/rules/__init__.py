"""Pure rules, one module each: proof, calendar, cron, reminders, audit. No I/O."""

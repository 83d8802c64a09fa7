//! SNAPSHOT_FILE: queues, cursors and WATCH positions across a graceful restart.

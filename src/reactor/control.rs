//! Process control inside the worker: signals (SIGHUP reloads, SIGINT/SIGTERM stop
//! gracefully), the reload itself (what changed, what needs a restart, rebinding) and the
//! limits derived from the config.
//!
//! Structure: no state of its own; it reads `Reactor::source` and replaces `Reactor::cfg`
//! and `Reactor::limits` on a successful reload.
//! Uses: config, logging, sys, storage (counts for log lines).

use super::*;

pub(super) fn limits_of(cfg: &Config) -> Limits {
    Limits {
        max_data_for_id: cfg.max_data_for_id,
        offline_timeout: cfg.offline_timeout,
        clean_id_after: cfg.clean_id_after,
        event_chain_len: cfg.event_chain_len,
        // A request is never held past half its WAIT_TIMEOUT (which restarts when its
        // identifier line arrives), so a hold cannot turn a delivery into a timeout.
        coalesce: match cfg.wait_timeout {
            Some(t) => cfg.coalesce.min(t / 2),
            None => cfg.coalesce,
        },
    }
}

/// A config value as the reload log shows it (lists joined with ", ", as Perl does).
pub(super) fn option_text(v: Option<&Value>) -> String {
    match v {
        Some(Value::List(items)) => items
            .iter()
            .map(Value::to_perl_string)
            .collect::<Vec<_>>()
            .join(", "),
        Some(v) => v.to_perl_string(),
        None => String::new(),
    }
}

impl Reactor {
    /// Makes `run` handle SIGHUP (reload from `source`), SIGINT and SIGTERM (graceful stop).
    pub fn handle_signals(&mut self, source: ConfigSource) -> Result<(), String> {
        let sfd = SignalFd::new().map_err(|e| format!("signalfd: {e}"))?;
        self.poll
            .registry()
            .register(
                &mut mio::unix::SourceFd(&sfd.raw_fd()),
                SIGNAL,
                Interest::READABLE,
            )
            .map_err(|e| format!("signalfd: {e}"))?;
        self.signals = Some(sfd);
        self.source = Some(source);
        Ok(())
    }

    pub(super) fn on_signals(&mut self, now: Instant) -> Option<Exit> {
        while let Some(sig) = self.signals.as_ref().and_then(SignalFd::read) {
            match sig {
                libc::SIGHUP => {
                    if let Some(exit) = self.reload() {
                        return Some(exit);
                    }
                }
                _ => self.begin_stop(sig, now),
            }
        }
        None
    }

    /// SIGINT/SIGTERM: stop accepting, give every WAIT client its timeout reply (the header
    /// block it already has, then EOF) so browsers reconnect at once, and let IN requests
    /// under way finish for a moment.
    pub(super) fn begin_stop(&mut self, sig: libc::c_int, now: Instant) {
        if self.stop_by.is_some() {
            return;
        }
        rlog!(
            Info,
            self.storage.counts(),
            "{} received, exiting",
            sys::signal_name(sig)
        );
        for mut l in std::mem::take(&mut self.listeners) {
            let _ = self.poll.registry().deregister(&mut l.sock);
        }
        self.accept_paused_until = None;
        self.stop_by = Some(now + STOP_GRACE);
        let waits: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                // WAIT connections, and HTTP API connections idle between requests.
                let idle_api = c.proto == crate::conn::Proto::Api
                    && c.state == State::Reading
                    && c.buf.is_empty();
                (c.line == Line::Wait || idle_api) && c.out.is_none()
            })
            .map(|(k, _)| k)
            .collect();
        for k in waits {
            self.close_now(k, now);
        }
    }

    /// SIGHUP: load the config files again and apply what changed (spec 9.5).
    pub(super) fn reload(&mut self) -> Option<Exit> {
        rlog!(
            Info,
            self.storage.counts(),
            "SIGHUP received, reloading the config"
        );
        let source = self.source.as_ref()?;
        let loaded = match config::load(source.override_path.as_deref(), &source.install_dir) {
            Ok(l) => l,
            Err(e) => {
                rlog!(
                    Warn,
                    self.storage.counts(),
                    "Error reloading config, continue with old settings: {e}"
                );
                return None;
            }
        };
        for note in &loaded.notes {
            rlog!(Info, self.storage.counts(), "{note}");
        }
        let new = loaded.config;
        let keys: std::collections::BTreeSet<&String> =
            self.cfg.values.keys().chain(new.values.keys()).collect();
        for key in keys {
            let (a, b) = (
                self.cfg.values.get(key.as_str()),
                new.values.get(key.as_str()),
            );
            if matches!(a, Some(Value::Code(_))) || matches!(b, Some(Value::Code(_))) {
                continue;
            }
            let (a, b) = (option_text(a), option_text(b));
            if a == b {
                continue;
            }
            // Compat: SU_* need a fresh process, as in the original; WAIT_TIMEOUT and
            // IN_TIMEOUT apply to new connections live, and addresses are rebound live.
            // Cluster mode's Redis and key prefix are fixed for a worker's life (its links
            // and its position in the log): a fresh worker catches up under the new ones.
            if key.starts_with("SU_")
                || key.as_str() == "CLUSTER_REDIS"
                || key.as_str() == "CLUSTER_PREFIX"
            {
                rlog!(
                    Info,
                    self.storage.counts(),
                    "Low-level option {key} is changed, restarting the script from scratch"
                );
                return Some(Exit::Restart);
            }
            rlog!(
                Info,
                self.storage.counts(),
                "Option {key} is changed: {a} -> {b}"
            );
        }
        let addrs = wanted_addrs(&new);
        if addrs != wanted_addrs(&self.cfg) {
            let old = std::mem::take(&mut self.listeners);
            match self.bind_all(old, &addrs) {
                Ok(l) => self.listeners = l,
                Err(e) => {
                    rlog!(
                        Info,
                        self.storage.counts(),
                        "Cannot listen on the new addresses live ({e}), restarting the script from scratch"
                    );
                    return Some(Exit::Restart);
                }
            }
        }
        self.count_base_fds();
        if let Some(c) = self.cluster.as_deref_mut() {
            c.set_maxlen(new.cluster_maxlen);
        }
        logging::set_verbosity(new.verbosity);
        self.limits = limits_of(&new);
        self.cfg = new;
        self.counters.reloads += 1;
        None
    }
}

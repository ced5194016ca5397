//! The signals an operator sends, as php-fpm and spawn-fcgi read them, for `plexer serve` and
//! `plexer spawn` alike: SIGTERM and SIGINT stop gracefully, SIGQUIT at once, SIGHUP reloads,
//! SIGUSR1 reopens the logs.

use tokio::signal::unix::{Signal, SignalKind, signal};

/// What a signal asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Asked {
    /// Stop; `drain`: let requests in flight finish first.
    Stop { drain: bool, by: &'static str },
    /// SIGHUP: read the configuration (or start new workers) again.
    Reload,
    /// SIGUSR1.
    ReopenLogs,
}

/// The handlers, installed once at start-up.
pub struct Signals {
    terminate: Signal,
    interrupt: Signal,
    quit: Signal,
    hangup: Signal,
    user1: Signal,
}

impl Signals {
    pub fn install() -> std::io::Result<Self> {
        Ok(Signals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            quit: signal(SignalKind::quit())?,
            hangup: signal(SignalKind::hangup())?,
            user1: signal(SignalKind::user_defined1())?,
        })
    }

    /// The next signal's request.
    pub async fn next(&mut self) -> Asked {
        tokio::select! {
            _ = self.terminate.recv() => Asked::Stop { drain: true, by: "SIGTERM" },
            _ = self.interrupt.recv() => Asked::Stop { drain: true, by: "SIGINT" },
            _ = self.quit.recv() => Asked::Stop { drain: false, by: "SIGQUIT" },
            _ = self.hangup.recv() => Asked::Reload,
            _ = self.user1.recv() => Asked::ReopenLogs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn each_signal_asks_for_what_php_fpm_does() {
        let mut signals = Signals::install().unwrap();
        let me = nix::unistd::getpid();
        for (sent, asked) in [
            (nix::sys::signal::Signal::SIGHUP, Asked::Reload),
            (nix::sys::signal::Signal::SIGUSR1, Asked::ReopenLogs),
            (
                nix::sys::signal::Signal::SIGQUIT,
                Asked::Stop {
                    drain: false,
                    by: "SIGQUIT",
                },
            ),
            (
                nix::sys::signal::Signal::SIGTERM,
                Asked::Stop {
                    drain: true,
                    by: "SIGTERM",
                },
            ),
        ] {
            nix::sys::signal::kill(me, sent).unwrap();
            assert_eq!(signals.next().await, asked);
        }
    }
}

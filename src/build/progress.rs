//! Live progress on stderr: one line per running stage with its elapsed time
//! (indicatif), or plain lines when stderr is not a terminal.

use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::Status;

pub struct Progress {
    bars: Option<MultiProgress>,
    quiet: bool,
}

/// The line of one running stage; finished by [`Progress::finish`].
pub struct Running(Option<ProgressBar>);

impl Progress {
    /// `live`: spinners (stderr is a terminal); `quiet`: nothing at all.
    pub fn new(live: bool, quiet: bool) -> Self {
        let bars =
            (live && !quiet).then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Progress { bars, quiet }
    }

    pub fn start(&self, name: &str) -> Running {
        let Some(bars) = &self.bars else {
            if !self.quiet {
                crate::errln!("   building {name}");
            }
            return Running(None);
        };
        let bar = bars.add(ProgressBar::new_spinner());
        let style = ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
            .expect("kiln bug: bad progress template");
        bar.set_style(style);
        bar.set_message(name.to_owned());
        bar.enable_steady_tick(Duration::from_millis(120));
        Running(Some(bar))
    }

    /// A problem that fails nothing (a cache entry kiln could not use).
    /// One line on stderr. A warning may quote what a cache or a registry
    /// sent (a tree entry's name, a parser's "unknown field"): no control
    /// character of it reaches the terminal.
    pub fn warn(&self, message: &str) {
        if self.quiet {
            return;
        }
        let mut shown = String::with_capacity(message.len());
        for c in message.chars() {
            match c.is_control() {
                true => shown.extend(c.escape_default()),
                false => shown.push(c),
            }
        }
        let message = shown;
        match &self.bars {
            Some(bars) => bars.suspend(|| crate::errln!("warning: {message}")),
            None => crate::errln!("warning: {message}"),
        }
    }

    pub fn finish(&self, running: Running, name: &str, status: Status, elapsed: Duration) {
        if let Some(bar) = running.0 {
            bar.finish_and_clear();
        }
        self.done(name, status, elapsed);
    }

    /// The line of a node that finished without a line of its own (pulled
    /// from the cache, not run).
    pub fn done(&self, name: &str, status: Status, elapsed: Duration) {
        if self.quiet {
            return;
        }
        let line = format!(
            "{:>10} {name} ({:.2}s)",
            format!("{status:?}").to_lowercase(),
            elapsed.as_secs_f64()
        );
        match &self.bars {
            Some(bars) => bars.suspend(|| crate::errln!("{line}")),
            None => crate::errln!("{line}"),
        }
    }
}

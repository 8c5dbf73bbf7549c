//! kiln's stdout: every byte of data a command prints goes through here, so
//! a write that fails is an error the command returns, never a panic
//! (`println!` panics when stdout is a closed pipe or a full disk). A reader
//! that went away (`kiln graph | head -1`) ends kiln quietly, with exit 0
//! as ripgrep does; any other failure names stdout and exits 1. SIGPIPE
//! stays ignored, so a failed write to a child (`docker load`) is reported.
//! Does IO: writes to stdout.

use std::fmt;
use std::io::{self, Write};

use super::CliError;

/// Prints `args` to stdout, flushed: use [`outln!`](crate::outln) and
/// [`out!`](crate::out).
pub fn print(args: fmt::Arguments<'_>) -> Result<(), CliError> {
    let mut stdout = io::stdout().lock();
    stdout
        .write_fmt(args)
        .and_then(|()| stdout.flush())
        .map_err(stdout_error)
}

/// `println!` that returns the failure instead of panicking.
#[macro_export]
#[doc(hidden)]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::out::print(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` that returns the failure instead of panicking.
#[macro_export]
#[doc(hidden)]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::out::print(format_args!($($arg)*))
    };
}

/// `text` as a terminal may show it: every control character but a newline
/// or a tab becomes `�`. For text that holds what a stage or a base put in
/// an image (file names, symlink targets, config values): a hostile one
/// must not drive the user's terminal with escape sequences.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    let bad = |c: char| c.is_control() && c != '\n' && c != '\t';
    match text.chars().any(bad) {
        false => std::borrow::Cow::Borrowed(text),
        true => text
            .chars()
            .map(|c| if bad(c) { '\u{FFFD}' } else { c })
            .collect(),
    }
}

/// What a failed write to stdout means for the command.
pub fn stdout_error(source: io::Error) -> CliError {
    match source.kind() {
        io::ErrorKind::BrokenPipe => CliError::StdoutClosed,
        _ => CliError::Stdout { source },
    }
}

/// Stdout as a [`Write`] for streaming (an image archive), remembering the
/// first failure: the writer's caller wraps it in its own error, which no
/// longer says whether stdout or a file being read failed.
pub struct Stdout {
    inner: io::StdoutLock<'static>,
    failed: Option<io::Error>,
}

impl Default for Stdout {
    fn default() -> Stdout {
        Stdout {
            inner: io::stdout().lock(),
            failed: None,
        }
    }
}

impl Stdout {
    /// The error to report if writing to stdout failed, whatever error the
    /// writer's caller returned.
    pub fn failure(&mut self) -> Option<CliError> {
        self.failed.take().map(stdout_error)
    }

    fn record<T>(&mut self, result: io::Result<T>) -> io::Result<T> {
        if let Err(e) = &result
            && e.kind() != io::ErrorKind::Interrupted
            && self.failed.is_none()
        {
            // io::Error is not Clone: keep the OS error, which is what
            // matters (EPIPE, ENOSPC), else its kind.
            self.failed = Some(match e.raw_os_error() {
                Some(code) => io::Error::from_raw_os_error(code),
                None => io::Error::from(e.kind()),
            });
        }
        result
    }
}

impl Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let result = self.inner.write(buf);
        self.record(result)
    }

    fn flush(&mut self) -> io::Result<()> {
        let result = self.inner.flush();
        self.record(result)
    }
}

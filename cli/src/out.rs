//! Standard output that behaves in a pipeline: once the reader has gone
//! (`tessera verify … | head -n1`, `| grep -q`), nothing more is written
//! and the command ends as it would have, with its usual exit status,
//! instead of panicking on the closed pipe. Every command prints through
//! [`outln!`] and [`out!`].

use std::io::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once standard output is closed or failed: nothing more is written.
static CLOSED: AtomicBool = AtomicBool::new(false);
/// A failure to write other than a closed pipe (a full disk behind a
/// redirection, say): the command then fails.
static FAILED: Mutex<Option<String>> = Mutex::new(None);

/// Writes `args` to standard output (and flushes, so that each line reaches
/// a reader that keeps the pipe open at once).
pub fn write(args: std::fmt::Arguments<'_>) {
    if CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(args).and_then(|()| stdout.flush()) {
        CLOSED.store(true, Ordering::Relaxed);
        if e.kind() != std::io::ErrorKind::BrokenPipe
            && let Ok(mut failed) = FAILED.lock()
        {
            failed.get_or_insert_with(|| e.to_string());
        }
    }
}

/// Whether standard output has gone: a command that only prints may stop.
pub fn closed() -> bool {
    CLOSED.load(Ordering::Relaxed)
}

/// Why writing to standard output failed, other than its reader going.
pub fn failure() -> Option<String> {
    FAILED.lock().ok().and_then(|f| f.clone())
}

/// `println!` through [`write`].
macro_rules! outln {
    () => {
        $crate::out::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::out::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` through [`write`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::out::write(format_args!($($arg)*))
    };
}

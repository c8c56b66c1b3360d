//! A progress bar on stderr: redrawn in place on a terminal, a line every
//! 10% otherwise (logs, CI).

use std::io::{IsTerminal, Write};
use std::time::Instant;

pub struct Bar {
    what: String,
    start: Instant,
    tty: bool,
    last_decile: usize,
}

impl Bar {
    pub fn new(what: &str) -> Bar {
        Bar {
            what: what.into(),
            start: Instant::now(),
            tty: std::io::stderr().is_terminal(),
            last_decile: 0,
        }
    }

    pub fn update(&mut self, done: usize, total: usize) {
        self.update_with(done, total, "");
    }

    /// Like `update`, with a note after the bar (e.g. the current loss).
    pub fn update_with(&mut self, done: usize, total: usize, note: &str) {
        let total = total.max(1);
        let secs = self.start.elapsed().as_secs_f64();
        let rate = done as f64 / secs.max(1e-9);
        let eta = (total - done.min(total)) as f64 / rate.max(1e-9);
        let width = 30;
        let filled = width * done.min(total) / total;
        let line = format!(
            "{} [{}{}] {done}/{total}  {rate:.1}/s  {note}  {}",
            self.what,
            "=".repeat(filled),
            " ".repeat(width - filled),
            if done >= total {
                format!("done in {secs:.1} s")
            } else {
                format!("ETA {eta:.0} s")
            }
        );
        let mut err = std::io::stderr();
        if self.tty {
            let _ = write!(err, "\r{line}\x1b[K");
            if done >= total {
                let _ = writeln!(err);
            }
        } else {
            let decile = 10 * done.min(total) / total;
            if decile > self.last_decile || done >= total {
                self.last_decile = decile;
                let _ = writeln!(err, "{line}");
            }
        }
        let _ = err.flush();
    }
}

//! Progress of long jobs (`simulate`, `replay`): a bar with rate and ETA on a terminal,
//! a plain line every few seconds otherwise (logs, CI).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

pub struct Progress {
    bar: Option<ProgressBar>,
    total: Option<u64>,
    unit: &'static str,
}

impl Progress {
    /// Counts `unit`s up to `total` (unknown: a spinner).
    pub fn new(total: Option<u64>, unit: &'static str) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let (bar, template) = match total {
                Some(total) => {
                    (ProgressBar::new(total), format!("{{bar:40.cyan/blue}} {{human_pos}}/{{human_len}} {unit} {{per_sec}} ETA {{eta}}"))
                }
                None => (ProgressBar::new_spinner(), format!("{{spinner}} {{human_pos}} {unit} {{per_sec}}")),
            };
            bar.set_style(ProgressStyle::with_template(&template).unwrap_or_else(|_| ProgressStyle::default_bar()));
            bar
        });
        Progress { bar, total, unit }
    }

    /// Counts bytes of an input file.
    pub fn bytes(total: Option<u64>) -> Self {
        let progress = Progress::new(total, "bytes");
        if let Some(bar) = &progress.bar {
            bar.set_style(
                ProgressStyle::with_template("{bar:40.cyan/blue} {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
        }
        progress
    }

    /// Reports `done` so far (the bar, or a line at most every 5 s).
    pub fn set(&self, done: u64, last_line: &mut Instant, started: Instant) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
            return;
        }
        if last_line.elapsed() < Duration::from_secs(5) {
            return;
        }
        *last_line = Instant::now();
        let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
        match self.total {
            Some(total) => {
                eprintln!("{done}/{total} {}, {rate:.0}/s, ETA {:.0} s", self.unit, (total - done.min(total)) as f64 / rate.max(1.0))
            }
            None => eprintln!("{done} {}, {rate:.0}/s", self.unit),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

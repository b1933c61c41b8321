//! Prints the NDJSON input of tests/golden.rs: 20 minutes of a small simulated city (JSON
//! only) with every kind of vendor fault, stamped on 2026-11-25.
//!
//! `cargo run --example golden_input > tests/data/golden_input.ndjson`

use citysense::sim::{City, FaultRates, Generator, SimFormat};

fn main() {
    let start = 1_795_593_600_000; // 2026-11-25T08:00:00Z
    let faults =
        FaultRates { malformed: 0.01, unknown_unit: 0.01, out_of_range: 0.01, non_finite: 0.01, duplicate: 0.01, late: 0.01, future: 0.01 };
    let mut generator = Generator::new(City::generate(12), 2026, start, SimFormat::Json, faults);
    generator.set_interval(30_000);
    let mut records = Vec::new();
    generator.emit_until(start + 20 * 60_000, &mut records);
    for r in records {
        // Malformed records are cut mid-line by the simulator; NDJSON keeps them one per line.
        println!("{}", String::from_utf8_lossy(&r.payload));
    }
}

//! Where results go. `line_protocol` encodes window results for InfluxDB, `influx` writes
//! them in batches with retry, `memory` keeps recent results for the API and the demo,
//! `deadletter` produces rejected records with their reason headers. Only this module
//! knows the line protocol and the HTTP clients.

pub mod aggregates;
pub mod alerts;
pub mod deadletter;
pub mod influx;
pub mod line_protocol;
pub mod memory;

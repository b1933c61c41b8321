//! The simulated city: a Beijing-like layout of districts, streets and grids with PM2.5
//! micro-stations, dust monitors, river and underpass gauges and charging piles (`city`),
//! a deterministic generator of their readings with realistic daily patterns and vendor
//! faults (`generator`), and the producer that publishes them to Kafka (`publish`).

pub mod city;
pub mod generator;
pub mod publish;

pub use city::{City, SimSensor};
pub use generator::{Episode, EpisodeKind, Fault, FaultRates, Generator, SimFormat, SimRecord};

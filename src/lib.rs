#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod campaign;
pub mod catalog;
pub mod check;
pub mod config;
pub mod diag;
pub mod duration;
pub mod format;
pub mod graph;
pub mod lsp;
pub mod media;
pub mod pattern;
pub mod phone;
pub mod project;
pub mod providers;
pub mod runtime;
pub mod serve;
pub mod source;
pub mod syntax;
pub mod testing;

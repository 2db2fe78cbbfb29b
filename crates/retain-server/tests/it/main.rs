//! The API on a small synthetic operator: login, lockout, the role × endpoint matrix derived
//! from the authorization table, manager scoping, the dashboard's cookie and CSRF token, JSON
//! errors, health, metrics and the OpenAPI document.

mod access;
mod audit;
mod common;
mod input;
mod openapi;
mod schedule;
mod sessions;
mod sources;

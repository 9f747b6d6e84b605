//! Helpers shared by the integration tests: bundles, runtime selection, cleanup guards.

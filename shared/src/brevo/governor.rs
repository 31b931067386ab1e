//! Brevo rate governor. (Stub: being implemented.)
pub struct RateGovernor;

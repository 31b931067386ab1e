//! Brevo HTTP client and dry-run client. (Stub: being implemented.)
pub struct BrevoClient;
pub struct DryRunBrevo;

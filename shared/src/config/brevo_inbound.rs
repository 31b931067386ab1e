//! The settings of Brevo's marketing webhooks into deskbridge (`POST /webhooks/brevo`), the
//! two-way path back into the helpdesks.

use super::vars::Vars;

/// Brevo's marketing webhooks into deskbridge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BrevoInboundSettings {
    /// The expected `Authorization: Bearer <token>` (`BREVO_WEBHOOK_TOKEN`); unset, the route
    /// answers 404 like any source that is not configured.
    pub webhook_token: Option<String>,
    /// The name of the Brevo API key deskbridge writes with (`BREVO_API_KEY_NAME`): events whose
    /// `api_key_name` is this are echoes of deskbridge's own writes, and are ignored.
    pub api_key_name: Option<String>,
    /// The expected `Authorization: Bearer <token>` of `POST /actions/<helpdesk>/tickets`, a
    /// Brevo automation's webhook step (`DESKBRIDGE_ACTIONS_TOKEN`); unset, the route answers
    /// 404.
    pub actions_token: Option<String>,
}

impl BrevoInboundSettings {
    /// Reads `BREVO_WEBHOOK_TOKEN`, `BREVO_API_KEY_NAME` and `DESKBRIDGE_ACTIONS_TOKEN`.
    pub fn from_vars(vars: &Vars) -> Self {
        BrevoInboundSettings {
            webhook_token: vars.get("BREVO_WEBHOOK_TOKEN"),
            api_key_name: vars.get("BREVO_API_KEY_NAME"),
            actions_token: vars.get("DESKBRIDGE_ACTIONS_TOKEN"),
        }
    }

    /// The start-up line of the automation route (never the token); `helpdesks` are those
    /// whose tickets the configuration leaves on.
    pub fn describe_actions(&self, helpdesks: &[&str]) -> String {
        match (&self.actions_token, helpdesks) {
            (None, _) => "actions: off (DESKBRIDGE_ACTIONS_TOKEN not set)".to_string(),
            (Some(_), []) => "actions: on, but the configuration switches every helpdesk's \
                              tickets off"
                .to_string(),
            (Some(_), on) => format!(
                "actions: Brevo automations open tickets at /actions/<helpdesk>/tickets ({})",
                on.join(", ")
            ),
        }
    }

    /// The start-up line of the route (never the token).
    pub fn describe(&self) -> String {
        match self.webhook_token {
            Some(_) => "brevo: webhooks on at /webhooks/brevo (unsubscribes, spam complaints and \
                        hard bounces are written back to the helpdesks)"
                .to_string(),
            None => "brevo: webhooks off (BREVO_WEBHOOK_TOKEN not set)".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_route_is_on_with_its_token_and_the_line_never_shows_it() {
        let off = BrevoInboundSettings::from_vars(&Vars::from_pairs([("BREVO_API_KEY_NAME", " ")]));
        assert_eq!(off, BrevoInboundSettings::default());
        assert_eq!(
            off.describe(),
            "brevo: webhooks off (BREVO_WEBHOOK_TOKEN not set)"
        );
        let on = BrevoInboundSettings::from_vars(&Vars::from_pairs([
            ("BREVO_WEBHOOK_TOKEN", "s3cret-token"),
            ("BREVO_API_KEY_NAME", "deskbridge"),
        ]));
        assert_eq!(on.api_key_name.as_deref(), Some("deskbridge"));
        assert!(on.describe().contains("webhooks on at /webhooks/brevo"));
        assert!(!on.describe().contains("s3cret-token"));
        assert_eq!(
            on.describe_actions(&["zendesk"]),
            "actions: off (DESKBRIDGE_ACTIONS_TOKEN not set)"
        );
        let actions = BrevoInboundSettings::from_vars(&Vars::from_pairs([(
            "DESKBRIDGE_ACTIONS_TOKEN",
            "act-token",
        )]));
        assert_eq!(actions.actions_token.as_deref(), Some("act-token"));
        let line = actions.describe_actions(&["zendesk", "gorgias"]);
        assert_eq!(
            line,
            "actions: Brevo automations open tickets at /actions/<helpdesk>/tickets \
             (zendesk, gorgias)"
        );
        assert!(!line.contains("act-token"));
        assert!(
            actions
                .describe_actions(&[])
                .contains("switches every helpdesk")
        );
    }
}

//! Opening the tickets Brevo automations ask for, in the helpdesk each names: Zendesk (found
//! again by `external_id`), Intercom (of the configured ticket type, found again by the key in
//! its description) and Gorgias (found again by `external_id`). Each helpdesk opens tickets when
//! its API credentials are set, it is enabled, and the configuration's `actions` block leaves
//! its tickets on; the Intercom ticket type and the Gorgias channel come from that block.

use super::{TicketOpened, TicketRequest};
use crate::config::Settings;
use crate::helpdesk::LookupError;
use crate::helpdesk::gorgias::tickets::{GorgiasTickets, NewGorgiasTicket};
use crate::helpdesk::intercom::tickets::{IntercomTickets, NewIntercomTicket};
use crate::helpdesk::zendesk::tickets::{NewTicket, ZendeskTickets};
use crate::model::Source;

/// The helpdesk clients that open tickets, one per helpdesk that can.
#[derive(Debug, Clone, Default)]
pub(crate) struct TicketOpeners {
    zendesk: Option<ZendeskTickets>,
    intercom: Option<IntercomTickets>,
    gorgias: Option<GorgiasTickets>,
}

impl TicketOpeners {
    pub(crate) fn new(settings: &Settings) -> Self {
        let actions = &settings.file.actions;
        let on = |helpdesk: &Source| {
            settings
                .api_enabled(helpdesk)
                .then(|| actions.template(helpdesk))
                .flatten()
        };
        TicketOpeners {
            zendesk: on(&Source::Zendesk)
                .and_then(|_| settings.zendesk.auth().map(ZendeskTickets::new)),
            intercom: on(&Source::Intercom).and_then(|t| {
                let ticket_type = t.ticket_type_id.as_deref()?;
                IntercomTickets::from_settings(&settings.intercom, ticket_type)
            }),
            gorgias: on(&Source::Gorgias)
                .and_then(|t| GorgiasTickets::from_settings(&settings.gorgias, &t.channel)),
        }
    }

    /// Whether tickets can be opened in `helpdesk`.
    pub(crate) fn opens(&self, helpdesk: &Source) -> bool {
        match helpdesk {
            Source::Zendesk => self.zendesk.is_some(),
            Source::Intercom => self.intercom.is_some(),
            Source::Gorgias => self.gorgias.is_some(),
            _ => false,
        }
    }

    /// Opens `ticket` in its helpdesk unless it is there; `None` when that helpdesk cannot.
    pub(crate) async fn open(
        &self,
        client: &reqwest::Client,
        ticket: &TicketRequest,
    ) -> Option<Result<TicketOpened, LookupError>> {
        let opened = |(id, created): (String, bool)| {
            if created {
                TicketOpened::Created(id)
            } else {
                TicketOpened::Existing(id)
            }
        };
        let result = match ticket.helpdesk {
            Source::Zendesk => {
                let new = NewTicket {
                    external_id: &ticket.external_id,
                    requester_email: &ticket.email,
                    requester_name: &ticket.name,
                    subject: &ticket.subject,
                    comment: &ticket.comment,
                    tags: &ticket.tags,
                    priority: ticket.priority.as_deref(),
                };
                let zendesk = self.zendesk.as_ref()?;
                zendesk
                    .open_once(client, &new)
                    .await
                    .map(|o| (o.id, o.created))
            }
            Source::Intercom => {
                let new = NewIntercomTicket {
                    external_id: &ticket.external_id,
                    email: &ticket.email,
                    title: &ticket.subject,
                    description: &ticket.comment,
                };
                let intercom = self.intercom.as_ref()?;
                intercom
                    .open_once(client, &new)
                    .await
                    .map(|o| (o.id, o.created))
            }
            Source::Gorgias => {
                let new = NewGorgiasTicket {
                    external_id: &ticket.external_id,
                    email: &ticket.email,
                    subject: &ticket.subject,
                    body: &ticket.comment,
                    tags: &ticket.tags,
                };
                let gorgias = self.gorgias.as_ref()?;
                gorgias
                    .open_once(client, &new)
                    .await
                    .map(|o| (o.id, o.created))
            }
            _ => return None,
        };
        Some(result.map(opened))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Vars;

    fn openers(pairs: &[(&str, &str)], config: Option<&str>) -> TicketOpeners {
        let mut pairs = pairs.to_vec();
        if config.is_some() {
            pairs.push(("DESKBRIDGE_CONFIG", "secretsmanager:arn:test"));
        }
        let mut vars = Vars::from_pairs(pairs);
        if let Some(text) = config {
            vars = vars.with_config_text(text);
        }
        TicketOpeners::new(&Settings::from_vars(&vars).expect("settings"))
    }

    const APIS: &[(&str, &str)] = &[
        ("ZENDESK_BASE_URL", "http://127.0.0.1:9"),
        ("ZENDESK_OAUTH_TOKEN", "zd"),
        ("INTERCOM_ACCESS_TOKEN", "ic"),
        ("GORGIAS_BASE_URL", "http://127.0.0.1:9"),
        ("GORGIAS_EMAIL", "api@shop.example"),
        ("GORGIAS_API_KEY", "gg"),
    ];

    #[test]
    fn each_helpdesk_opens_tickets_with_its_api_and_its_template_on() {
        let defaults = openers(APIS, None);
        assert!(defaults.opens(&Source::Zendesk));
        assert!(defaults.opens(&Source::Gorgias));
        assert!(
            !defaults.opens(&Source::Intercom),
            "no ticket type configured"
        );
        let typed = openers(
            APIS,
            Some("actions:\n  intercom:\n    ticket_type_id: 7\n  zendesk:\n    enabled: false\n"),
        );
        assert!(typed.opens(&Source::Intercom));
        assert!(!typed.opens(&Source::Zendesk));
        let none = openers(&[], Some("actions:\n  intercom:\n    ticket_type_id: 7\n"));
        for h in [Source::Zendesk, Source::Intercom, Source::Gorgias] {
            assert!(!none.opens(&h), "{h}: no API credentials");
        }
    }
}

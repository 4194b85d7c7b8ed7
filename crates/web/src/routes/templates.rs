//! The template pages: the user's message templates with the variables each uses, adding
//! and editing one with a live preview (sample values, the filled text and its SMS parts,
//! or why the body does not parse), and deleting one no scheduled send uses. Also the
//! inputs for a template's variables that the Send and Scheduled forms show.

use std::collections::BTreeMap;

use askama::Template;
use askama_web::WebTemplate;
use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use ender_core::FieldError;
use ender_core::sms::body::clean;
use ender_core::template::text::TemplateText;
use ender_core::template::{self, TemplateId, TemplateInput, TemplateStoreError};
use ender_core::workspace::{Action, WorkspaceId};
use tower_sessions::Session;

use crate::error::{AppError, AppResult};
use crate::extract::Form;
use crate::routes::send::Counter;
use crate::session::{CurrentWorkspace, flash};
use crate::state::AppState;
use crate::views::{Errors, Shell, htmx_only, vary};

pub const PATH: &str = "/templates";
pub const NEW: &str = "/templates/new";
pub const PREVIEW: &str = "/templates/preview";
/// Templates one page of the list shows.
const PAGE: i64 = 50;
/// Form fields carrying a variable's value are named `var.<variable>`.
pub const VAR_PREFIX: &str = "var.";
/// Variables a recipient's contact fills when a template is sent.
pub const CONTACT_VARIABLES: [&str; 2] = ["name", "phone"];
/// What the preview puts in for the contact's variables until the user types other values.
const SAMPLES: [(&str, &str); 2] = [("name", "Ana Silva"), ("phone", "+15551234567")];

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(PATH, get(list))
        .route(NEW, get(new_form).post(create))
        .route(PREVIEW, post(preview))
        .route("/templates/{id}", get(show).post(update))
        .route("/templates/{id}/delete", post(delete))
}

/// `?page=` of a paged list (1-based).
#[derive(serde::Deserialize, Default)]
#[serde(default)]
pub struct PageQuery {
    page: Option<i64>,
}

/// Where a paged list is and the links around it.
pub struct Pager {
    pub page: i64,
    pub pages: i64,
    pub total: i64,
}

impl PageQuery {
    /// The page asked for (1 when none or nonsense).
    pub fn page(&self) -> i64 {
        self.page.unwrap_or(1).clamp(1, i64::from(i32::MAX))
    }

    /// The rows before the page asked for.
    pub fn offset(&self, per_page: i64) -> i64 {
        (self.page() - 1).saturating_mul(per_page)
    }
}

impl Pager {
    pub fn new(q: &PageQuery, total: i64, per_page: i64) -> Self {
        Self {
            page: q.page(),
            pages: ((total + per_page - 1) / per_page).max(1),
            total,
        }
    }
}

/// The template id of a path or form, or "not found".
pub fn template_id(raw: &str) -> AppResult<TemplateId> {
    raw.parse().map_err(|_| AppError::NotFound)
}

async fn load(state: &AppState, workspace: WorkspaceId, raw: &str) -> AppResult<template::Template> {
    template::repo::find(&state.pool, workspace, template_id(raw)?)
        .await?
        .ok_or(AppError::NotFound)
}

/// One variable of a template, as an input.
pub struct VarField {
    pub name: String,
    pub value: String,
}

impl VarField {
    /// The input's `name` attribute.
    pub fn input_name(&self) -> String {
        format!("{VAR_PREFIX}{}", self.name)
    }

    /// The variable as the body writes it: `{{code}}`.
    pub fn tag(&self) -> String {
        format!("{{{{{}}}}}", self.name)
    }

    /// The input's `id` attribute (kept across HTMX swaps, so focus stays put).
    pub fn input_id(&self) -> String {
        format!("var-{}", self.name)
    }
}

/// The inputs a chosen template needs: one per variable except those the contact fills.
#[derive(Default)]
pub struct VarInputs {
    pub fields: Vec<VarField>,
    /// Whether the template uses `{{name}}` or `{{phone}}`.
    pub uses_contact: bool,
    /// Whether a template is chosen at all.
    pub chosen: bool,
    pub error: String,
}

impl VarInputs {
    /// For a template's variables, with the values typed so far.
    pub fn of(variables: &[String], values: &BTreeMap<String, String>) -> Self {
        Self {
            fields: variables
                .iter()
                .filter(|v| !CONTACT_VARIABLES.contains(&v.as_str()))
                .map(|v| VarField {
                    name: v.clone(),
                    value: values.get(v).cloned().unwrap_or_default(),
                })
                .collect(),
            uses_contact: variables.iter().any(|v| CONTACT_VARIABLES.contains(&v.as_str())),
            chosen: true,
            error: String::new(),
        }
    }

    /// The variables left empty, as `{{a}}, {{b}}`, or `None` when all are filled.
    pub fn missing(&self) -> Option<String> {
        let missing: Vec<String> = self
            .fields
            .iter()
            .filter(|f| f.value.trim().is_empty())
            .map(|f| format!("{{{{{}}}}}", f.name))
            .collect();
        (!missing.is_empty()).then(|| missing.join(", "))
    }
}

/// The `var.<name>` fields of a form, without empty values (a variable left empty is
/// missing, not blank).
pub fn variables_of(pairs: &[(String, String)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix(VAR_PREFIX)?.to_owned(), v.clone())))
        .filter(|(k, v)| !k.is_empty() && !v.trim().is_empty())
        .collect()
}

/// A template in a picker.
pub struct TemplateOption {
    pub id: String,
    pub name: String,
    pub body: String,
    pub variables: Vec<String>,
}

/// Every template of the user, by name, for pickers.
pub async fn options(state: &AppState, workspace: WorkspaceId) -> AppResult<Vec<TemplateOption>> {
    let (all, _) = template::repo::list(&state.pool, workspace, 0, 1000).await?;
    Ok(all
        .into_iter()
        .map(|t| TemplateOption {
            id: t.id.to_string(),
            variables: t.variables(),
            name: t.name,
            body: t.body,
        })
        .collect())
}

pub struct TemplateRow {
    pub id: String,
    pub name: String,
    pub excerpt: String,
    pub variables: Vec<String>,
}

/// The start of a body for a table cell.
fn excerpt(body: &str) -> String {
    const MAX: usize = 90;
    let flat = body.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= MAX {
        flat
    } else {
        let mut s: String = flat.chars().take(MAX - 1).collect();
        s.push('…');
        s
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "templates/list.html")]
pub struct TemplatesPage {
    pub shell: Shell,
    pub rows: Vec<TemplateRow>,
    pub pager: Pager,
}

async fn list(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    shell: Shell,
    Query(q): Query<PageQuery>,
) -> AppResult<TemplatesPage> {
    let (items, total) = template::repo::list(&state.pool, ws.id(), q.offset(PAGE), PAGE).await?;
    let pager = Pager::new(&q, total, PAGE);
    let rows = items
        .iter()
        .map(|t| TemplateRow {
            id: t.id.to_string(),
            name: t.name.clone(),
            excerpt: excerpt(&t.body),
            variables: t.variables(),
        })
        .collect();
    Ok(TemplatesPage { shell, rows, pager })
}

/// The editor's values as submitted (or as stored).
pub struct TemplateForm {
    pub name: String,
    pub body: String,
    /// Sample values typed in the preview, by variable (present even when emptied).
    pub samples: BTreeMap<String, String>,
}

impl TemplateForm {
    fn from_pairs(pairs: Vec<(String, String)>) -> Self {
        let mut f = Self::of_parts("", "");
        for (k, v) in pairs {
            match k.as_str() {
                "name" => f.name = v,
                "body" => f.body = v,
                _ => {
                    if let Some(var) = k.strip_prefix(VAR_PREFIX) {
                        f.samples.insert(var.to_owned(), v);
                    }
                }
            }
        }
        f
    }

    fn of_parts(name: &str, body: &str) -> Self {
        Self {
            name: name.to_owned(),
            body: body.to_owned(),
            samples: BTreeMap::new(),
        }
    }

    fn input(&self) -> Result<TemplateInput, Vec<FieldError>> {
        TemplateInput::parse(&self.name, &self.body)
    }
}

/// The live preview: the variables the body uses with a sample value each, the text
/// filled with them and its size, or why the body does not parse.
pub struct Preview {
    pub variables: Vec<VarField>,
    pub text: String,
    pub counter: Counter,
    pub error: String,
}

impl Preview {
    pub fn of(form: &TemplateForm) -> Self {
        let body = clean(&form.body);
        match TemplateText::parse(&body) {
            Ok(t) => {
                let variables: Vec<VarField> = t
                    .variables()
                    .into_iter()
                    .map(|v| VarField {
                        name: v.to_owned(),
                        value: match form.samples.get(v) {
                            Some(typed) => typed.clone(),
                            None => SAMPLES
                                .iter()
                                .find(|(k, _)| *k == v)
                                .map(|(_, s)| (*s).to_owned())
                                .unwrap_or_default(),
                        },
                    })
                    .collect();
                let text = t.preview(|name| {
                    variables
                        .iter()
                        .find(|f| f.name == name && !f.value.is_empty())
                        .map(|f| f.value.as_str())
                });
                Self {
                    counter: Counter::of(&text),
                    variables,
                    text,
                    error: String::new(),
                }
            }
            Err(e) => Self {
                variables: Vec::new(),
                counter: Counter::of(&body),
                text: body,
                error: e.to_string(),
            },
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "templates/_preview.html")]
pub struct PreviewPartial {
    pub preview: Preview,
}

#[derive(Template, WebTemplate)]
#[template(path = "templates/new.html")]
pub struct NewTemplatePage {
    pub shell: Shell,
    pub form: TemplateForm,
    pub preview: Preview,
    pub errors: Errors,
}

#[derive(Template, WebTemplate)]
#[template(path = "templates/show.html")]
pub struct TemplatePage {
    pub shell: Shell,
    pub id: String,
    pub title: String,
    pub form: TemplateForm,
    pub preview: Preview,
    pub errors: Errors,
}

impl TemplatePage {
    fn new(shell: Shell, t: &template::Template, form: TemplateForm, errors: Errors) -> Self {
        Self {
            shell,
            id: t.id.to_string(),
            title: t.name.clone(),
            preview: Preview::of(&form),
            form,
            errors,
        }
    }
}

async fn new_form(ws: CurrentWorkspace, shell: Shell) -> AppResult<NewTemplatePage> {
    ws.may(Action::ManageTemplates)?;
    let form = TemplateForm::of_parts("", "");
    Ok(NewTemplatePage {
        shell,
        preview: Preview::of(&form),
        form,
        errors: Errors::default(),
    })
}

/// The field errors of a failed save, or the failure to report otherwise.
fn field_errors(e: TemplateStoreError) -> AppResult<Vec<FieldError>> {
    match e {
        TemplateStoreError::Invalid(errors) => Ok(errors),
        TemplateStoreError::DuplicateName(_) | TemplateStoreError::TooMany(_) => {
            Ok(vec![FieldError::new("name", e.to_string())])
        }
        TemplateStoreError::NotFound => Err(AppError::NotFound),
        TemplateStoreError::InUse(_) => Ok(vec![FieldError::new("form", e.to_string())]),
        TemplateStoreError::Database(e) => Err(e.into()),
    }
}

async fn create(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    session: Session,
    shell: Shell,
    Form(pairs): Form<Vec<(String, String)>>,
) -> AppResult<Response> {
    ws.may(Action::ManageTemplates)?;
    let form = TemplateForm::from_pairs(pairs);
    let result = match form.input() {
        Ok(input) => {
            template::repo::create(&state.pool, ws.id(), &input, state.sms.limits.max_templates).await
        }
        Err(errors) => Err(TemplateStoreError::Invalid(errors)),
    };
    match result {
        Ok(t) => {
            tracing::info!(workspace.id = %ws.id(), template.id = %t.id, "template added");
            flash(
                &session,
                "success",
                format!("The template “{}” was added.", t.name),
            )
            .await?;
            Ok(Redirect::to(&format!("/templates/{}", t.id)).into_response())
        }
        Err(e) => {
            let page = NewTemplatePage {
                shell,
                preview: Preview::of(&form),
                form,
                errors: Errors(field_errors(e)?),
            };
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
    }
}

async fn show(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    shell: Shell,
    Path(raw): Path<String>,
) -> AppResult<TemplatePage> {
    let t = load(&state, ws.id(), &raw).await?;
    let form = TemplateForm::of_parts(&t.name, &t.body);
    Ok(TemplatePage::new(shell, &t, form, Errors::default()))
}

async fn update(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    session: Session,
    shell: Shell,
    Path(raw): Path<String>,
    Form(pairs): Form<Vec<(String, String)>>,
) -> AppResult<Response> {
    ws.may(Action::ManageTemplates)?;
    let t = load(&state, ws.id(), &raw).await?;
    let form = TemplateForm::from_pairs(pairs);
    let result = match form.input() {
        Ok(input) => template::repo::update(&state.pool, ws.id(), t.id, &input).await,
        Err(errors) => Err(TemplateStoreError::Invalid(errors)),
    };
    match result {
        Ok(saved) => {
            flash(
                &session,
                "success",
                format!("The template “{}” was saved.", saved.name),
            )
            .await?;
            Ok(Redirect::to(&format!("/templates/{}", t.id)).into_response())
        }
        Err(e) => {
            let page = TemplatePage::new(shell, &t, form, Errors(field_errors(e)?));
            Ok((StatusCode::UNPROCESSABLE_ENTITY, page).into_response())
        }
    }
}

/// The preview of the editor's current values (HTMX, as the user types).
async fn preview(
    ws: CurrentWorkspace,
    headers: HeaderMap,
    Form(pairs): Form<Vec<(String, String)>>,
) -> AppResult<Response> {
    ws.may(Action::ManageTemplates)?;
    htmx_only(&headers)?;
    let preview = Preview::of(&TemplateForm::from_pairs(pairs));
    Ok(vary(PreviewPartial { preview }.into_response()))
}

async fn delete(
    State(state): State<AppState>,
    ws: CurrentWorkspace,
    session: Session,
    Path(raw): Path<String>,
) -> AppResult<Redirect> {
    ws.may(Action::ManageTemplates)?;
    let t = load(&state, ws.id(), &raw).await?;
    match template::repo::delete(&state.pool, ws.id(), t.id).await {
        Ok(()) => {
            tracing::info!(workspace.id = %ws.id(), template.id = %t.id, "template deleted");
            flash(
                &session,
                "success",
                format!("The template “{}” was deleted.", t.name),
            )
            .await?;
            Ok(Redirect::to(PATH))
        }
        Err(TemplateStoreError::InUse(n)) => {
            let users = if n == 1 {
                "a scheduled send uses it. Change or delete that send first".to_owned()
            } else {
                format!("{n} scheduled sends use it. Change or delete them first")
            };
            let text = format!("The template “{}” was not deleted: {users}.", t.name);
            flash(&session, "error", text).await?;
            Ok(Redirect::to(&format!("/templates/{}", t.id)))
        }
        Err(TemplateStoreError::Database(e)) => Err(e.into()),
        Err(_) => Err(AppError::NotFound),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(body: &str, samples: &[(&str, &str)]) -> TemplateForm {
        let mut f = TemplateForm::of_parts("x", body);
        for (k, v) in samples {
            f.samples.insert((*k).to_owned(), (*v).to_owned());
        }
        f
    }

    #[test]
    fn the_preview_fills_samples_and_keeps_unknown_variables() {
        let p = Preview::of(&form("Hi {{name}}, code {{code}}, at {{ phone }}", &[]));
        assert_eq!(p.text, "Hi Ana Silva, code {{code}}, at +15551234567");
        let names: Vec<&str> = p.variables.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["name", "code", "phone"]);
        let p = Preview::of(&form(
            "Hi {{name}}, code {{code}}",
            &[("name", ""), ("code", "42")],
        ));
        assert_eq!(
            p.text, "Hi {{name}}, code 42",
            "an emptied sample leaves the variable"
        );
        assert_eq!(p.counter.chars, p.text.chars().count());
    }

    #[test]
    fn the_preview_reports_an_unclosed_variable() {
        let p = Preview::of(&form("Hi {{name", &[]));
        assert!(p.error.contains("Unclosed {{ at character 4"), "{}", p.error);
        assert_eq!(p.text, "Hi {{name");
    }

    #[test]
    fn variable_inputs_skip_what_the_contact_fills() {
        let vars = ["name".to_owned(), "code".to_owned()];
        let inputs = VarInputs::of(&vars, &BTreeMap::new());
        assert!(inputs.uses_contact);
        assert_eq!(inputs.fields.len(), 1);
        assert_eq!(inputs.missing().as_deref(), Some("{{code}}"));
        let pairs = vec![
            ("var.code".to_owned(), "42".to_owned()),
            ("var.x".to_owned(), " ".to_owned()),
        ];
        let values = variables_of(&pairs);
        assert_eq!(values.len(), 1);
        assert_eq!(VarInputs::of(&vars, &values).missing(), None);
    }

    #[test]
    fn pages_are_counted_from_one() {
        let q = |page| PageQuery { page };
        assert_eq!((q(None).page(), q(None).offset(50)), (1, 0));
        assert_eq!((q(Some(0)).page(), q(Some(-3)).offset(50)), (1, 0));
        assert_eq!(q(Some(3)).offset(50), 100);
        assert_eq!(Pager::new(&q(None), 0, 50).pages, 1);
        assert_eq!(Pager::new(&q(None), 101, 50).pages, 3);
    }

    #[test]
    fn excerpts_are_one_short_line() {
        assert_eq!(excerpt("a\n b"), "a b");
        assert_eq!(excerpt(&"x".repeat(200)).chars().count(), 90);
    }
}

//! Declarations to schemas: what triggers carry, what actions take, return
//! and raise, which record types and error kinds exist.
//!
//! The standard declarations in `std_actions/` and the user's own (`trigger
//! appointment.booked { ... }`) go through the same loader, so a user-declared
//! trigger is checked exactly like a standard one.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::limits::{AcrossLimits, DeclaredLimits};
use super::rules;
use super::types::{self, FieldTy, RecordTy, Ty};
use crate::diag::Diagnostics;
use crate::media::MediaKind;
use crate::source::Span;
use crate::syntax::ast::{
    self, Declaration, DeclarationKind, TypeArg, TypeArgValue, TypeExpr, TypeExprKind,
};

/// Everything declared: the vocabulary flows are checked against.
#[derive(Debug, Clone, Default)]
pub struct Schemas {
    /// Triggers by qualified name.
    pub triggers: BTreeMap<String, TriggerSchema>,
    /// Actions by qualified name.
    pub actions: BTreeMap<String, ActionSchema>,
    /// Record types by name.
    pub types: BTreeMap<String, Arc<RecordTy>>,
    /// Error kinds by name.
    pub errors: BTreeMap<String, ErrorSchema>,
}

/// A trigger: the event that starts a flow.
#[derive(Debug, Clone)]
pub struct TriggerSchema {
    /// Qualified name, e.g. `call.ended`.
    pub name: String,
    /// The event's fields, as a record named after the trigger.
    pub fields: Arc<RecordTy>,
    /// The indices of `fields.fields` in the order of their names: an
    /// event's record is built in that order, laid out at once instead of
    /// searched field by field.
    pub by_name: Vec<usize>,
    /// The fields' names in that order, shared by the records of all its
    /// events.
    pub names: Arc<[Box<str>]>,
    /// The field whose phone number gets an open 24-hour window.
    pub opens_window: Option<String>,
    /// `@reply(FIELD)`: the field that carries the id of the choice a
    /// customer made (a reply button, a list row, a quick reply).
    pub reply: Option<String>,
    /// `@correlate(FIELD)`: the field a `wait for` this trigger matches its
    /// key against (the customer's phone for WhatsApp triggers). A trigger
    /// without it cannot be waited for.
    pub correlate: Option<String>,
    /// Documentation.
    pub doc: Option<String>,
    /// Where it is declared.
    pub span: Span,
}

/// An action a flow can call.
#[derive(Debug, Clone)]
pub struct ActionSchema {
    /// Qualified name, e.g. `whatsapp.send_text`.
    pub name: String,
    /// Parameters in order.
    pub params: Vec<ParamSchema>,
    /// What a call returns; [`Ty::Nothing`] when nothing.
    pub returns: Ty,
    /// Error kinds a call can raise.
    pub raises: Vec<String>,
    /// The phone parameter whose 24-hour window must be open.
    pub requires_window: Option<String>,
    /// `@one_of(a, b, c)`: groups of optional parameters of which a call
    /// passes exactly one.
    pub one_of: Vec<Vec<String>>,
    /// `@media(KIND)`: the action sends media of this kind; its `link`
    /// parameter takes an http(s) link, its `file` parameter a local file.
    pub media: Option<MediaKind>,
    /// `@offers(PATH)`: where the ids of the choices a send offers are, e.g.
    /// `["buttons", "id"]`. On an action with a Template parameter, the path
    /// names the list of button parameters, read against the template's
    /// quick-reply buttons.
    pub offers: Vec<Vec<String>>,
    /// `@across(PATH, ...)`: limits on the items of nested lists taken
    /// together.
    pub across: Vec<AcrossLimits>,
    /// Documentation.
    pub doc: Option<String>,
    /// Where it is declared.
    pub span: Span,
}

impl ActionSchema {
    /// The parameter with this name.
    pub fn param(&self, name: &str) -> Option<&ParamSchema> {
        self.params.iter().find(|p| p.name == name)
    }
}

/// One parameter of an action.
#[derive(Debug, Clone)]
pub struct ParamSchema {
    /// The name arguments use.
    pub name: String,
    /// The accepted type.
    pub ty: Ty,
    /// Declared limits: `Text(max: N)`, `[T](min: N, max: N, unique: FIELD)`.
    pub limits: DeclaredLimits,
    /// Whether any limit applies to its values: its own, its items' or its
    /// record fields'. Worked out once, so that arguments of parameters
    /// without limits cost nothing to check.
    pub limited: bool,
    /// The value used when the argument is left out.
    pub default: Option<ast::Expr>,
    /// Documentation.
    pub doc: Option<String>,
    /// Where it is declared.
    pub span: Span,
}

impl ParamSchema {
    /// Whether a call must pass it: no default and not optional.
    pub fn is_required(&self) -> bool {
        self.default.is_none() && !matches!(self.ty, Ty::Optional(_))
    }
}

/// An error kind actions raise and flows catch.
#[derive(Debug, Clone)]
pub struct ErrorSchema {
    /// The kind's name, e.g. `RateLimited`.
    pub name: String,
    /// Whether the runtime retries it by default (wait 1 minute, once).
    pub retryable: bool,
    /// Documentation.
    pub doc: Option<String>,
    /// Where it is declared.
    pub span: Span,
}

impl Schemas {
    /// The fields of a caught error: `e.kind`, `e.message`.
    pub fn error_value_type() -> Ty {
        let field = |name: &str, doc: &str| {
            FieldTy::new(name, Ty::String, Some(doc.into()), Span::default())
        };
        Ty::Record(Arc::new(RecordTy {
            name: Some("Error".into()),
            fields: vec![
                field("kind", "The error kind's name, e.g. \"RateLimited\"."),
                field("message", "What went wrong, in the service's words."),
            ],
        }))
    }
}

/// Loads declarations into `schemas`, reporting mistakes in them.
pub(crate) fn load(
    schemas: &mut Schemas,
    declarations: &[&Declaration],
    diagnostics: &mut Diagnostics,
) {
    let mut first_seen: HashMap<(&'static str, String), Span> = HashMap::new();
    let mut unique = Vec::new();
    for decl in declarations {
        // Triggers and actions share a namespace with nothing else; types and
        // errors each have their own.
        let namespace = decl.keyword();
        let name = decl.name();
        let existing = first_seen
            .get(&(namespace, name.name.clone()))
            .copied()
            .or_else(|| match &decl.kind {
                DeclarationKind::Trigger { .. } => schemas.triggers.get(&name.name).map(|t| t.span),
                DeclarationKind::Action { .. } => schemas.actions.get(&name.name).map(|a| a.span),
                DeclarationKind::Type { .. } => {
                    schemas.types.get(&name.name).map(|_| Span::default())
                }
                DeclarationKind::Error { .. } => schemas.errors.get(&name.name).map(|e| e.span),
            });
        if let Some(first) = existing {
            diagnostics.push(rules::duplicate_definition::diagnostic(
                namespace, &name.name, name.span, first,
            ));
            continue;
        }
        first_seen.insert((namespace, name.name.clone()), name.span);
        unique.push(*decl);
    }

    // Error kinds and record types first: triggers and actions refer to them.
    for decl in &unique {
        if let DeclarationKind::Error { name } = &decl.kind {
            let mut retryable = false;
            for attr in &decl.attributes {
                if attr.name.name == "retryable" && attr.args.is_empty() {
                    retryable = true;
                } else {
                    diagnostics.push(rules::unknown_attribute::diagnostic(attr, "error"));
                }
            }
            schemas.errors.insert(
                name.name.clone(),
                ErrorSchema {
                    name: name.name.clone(),
                    retryable,
                    doc: decl.doc.clone(),
                    span: name.span,
                },
            );
        }
    }
    let type_decls: HashMap<&str, &Vec<ast::FieldDecl>> = unique
        .iter()
        .filter_map(|d| match &d.kind {
            DeclarationKind::Type { name, fields } => Some((name.name.as_str(), fields)),
            _ => None,
        })
        .collect();
    let mut resolver = Resolver {
        schemas,
        type_decls: &type_decls,
        resolving: Vec::new(),
        diagnostics,
    };
    for decl in &unique {
        if let DeclarationKind::Type { name, .. } = &decl.kind {
            for attr in &decl.attributes {
                resolver
                    .diagnostics
                    .push(rules::unknown_attribute::diagnostic(attr, "type"));
            }
            resolver.record_type(&name.name);
        }
    }
    for decl in &unique {
        match &decl.kind {
            DeclarationKind::Trigger { name, fields } => resolver.trigger(decl, name, fields),
            DeclarationKind::Action {
                name,
                params,
                returns,
                raises,
            } => resolver.action(decl, name, params, returns.as_ref(), raises),
            _ => {}
        }
    }
}

struct Resolver<'a> {
    schemas: &'a mut Schemas,
    type_decls: &'a HashMap<&'a str, &'a Vec<ast::FieldDecl>>,
    /// Record types being resolved, to stop at cycles.
    resolving: Vec<String>,
    diagnostics: &'a mut Diagnostics,
}

impl Resolver<'_> {
    fn record_type(&mut self, name: &str) -> Option<Arc<RecordTy>> {
        if let Some(done) = self.schemas.types.get(name) {
            return Some(done.clone());
        }
        let fields = *self.type_decls.get(name)?;
        if self.resolving.iter().any(|n| n == name) {
            // A record that contains itself could never be built; the field
            // is left unconstrained rather than looping.
            return None;
        }
        self.resolving.push(name.to_string());
        let fields = self.fields(fields);
        self.resolving.pop();
        let record = Arc::new(RecordTy {
            name: Some(name.to_string()),
            fields,
        });
        self.schemas.types.insert(name.to_string(), record.clone());
        Some(record)
    }

    fn fields(&mut self, fields: &[ast::FieldDecl]) -> Vec<FieldTy> {
        let mut out: Vec<FieldTy> = Vec::new();
        for field in fields {
            if let Some(first) = out.iter().find(|f| f.name == field.name.name) {
                self.diagnostics
                    .push(rules::duplicate_definition::diagnostic(
                        "field",
                        &field.name.name,
                        field.name.span,
                        first.span,
                    ));
                continue;
            }
            let (ty, limits) = self.type_expr(&field.ty);
            let default = field
                .default
                .as_ref()
                .and_then(|default| self.default_value(default, &ty));
            out.push(FieldTy {
                name: field.name.name.clone(),
                ty,
                doc: field.doc.clone(),
                span: field.name.span,
                limits,
                default,
            });
        }
        out
    }

    /// The type and its declared limits.
    fn type_expr(&mut self, ty: &TypeExpr) -> (Ty, DeclaredLimits) {
        let (base, limits) = match &ty.kind {
            TypeExprKind::List(element, args) => {
                let (element_ty, item_limits) = self.type_expr(element);
                let mut limits = self.list_limits(args, &element_ty);
                if !item_limits.is_empty() {
                    limits.items = Some(Box::new(item_limits));
                }
                (Ty::List(Box::new(element_ty)), limits)
            }
            TypeExprKind::Record(fields) => (
                Ty::Record(Arc::new(RecordTy {
                    name: None,
                    fields: self.fields(fields),
                })),
                DeclaredLimits::default(),
            ),
            TypeExprKind::Named { name, args } => {
                let ty = if let Some(builtin) = types::builtin(&name.name) {
                    builtin
                } else if let Some(record) = self.record_type(&name.name) {
                    Ty::Record(record)
                } else if self.type_decls.contains_key(name.name.as_str()) {
                    Ty::Any
                } else {
                    let mut candidates: Vec<&str> = types::BUILTIN_NAMES.to_vec();
                    candidates.extend(self.type_decls.keys().copied());
                    self.diagnostics
                        .push(rules::unknown_type::diagnostic(name, &candidates));
                    Ty::Unknown
                };
                let mut limits = DeclaredLimits::default();
                for arg in args {
                    match (arg.name.name.as_str(), count_arg(arg)) {
                        ("max", Some(max)) if ty.is_text() => limits.max_chars = Some(max),
                        _ => self
                            .diagnostics
                            .push(rules::unknown_attribute::bad_type_arg(
                                arg,
                                &name.name,
                                if ty.is_text() {
                                    "`max: N` (the most characters)"
                                } else {
                                    "no arguments"
                                },
                            )),
                    }
                }
                (ty, limits)
            }
        };
        let ty = if ty.optional { base.optional() } else { base };
        (ty, limits)
    }

    /// `min: N`, `max: N` and `unique: FIELD` of a list of `element`s, in a
    /// list type or an `@across` attribute.
    fn list_limits(&mut self, args: &[TypeArg], element: &Ty) -> DeclaredLimits {
        let mut limits = DeclaredLimits::default();
        for arg in args {
            match (arg.name.name.as_str(), &arg.value) {
                ("min", _) if count_arg(arg).is_some() => limits.min_items = count_arg(arg),
                ("max", _) if count_arg(arg).is_some() => limits.max_items = count_arg(arg),
                ("unique", TypeArgValue::Name(field))
                    if record_field(element, &field.name).is_some_and(|f| f.ty.is_text()) =>
                {
                    limits.unique = Some(field.name.clone())
                }
                _ => self.diagnostics.push(rules::unknown_attribute::bad_type_arg(
                    arg,
                    "a list",
                    "`min: N`, `max: N` (the fewest and most items) and `unique: FIELD` (a text field of the items that no two items may share)",
                )),
            }
        }
        limits
    }

    /// A trigger field's default as event JSON, if it is a literal of the
    /// field's type.
    fn default_value(&mut self, default: &ast::Expr, ty: &Ty) -> Option<serde_json::Value> {
        let default_ty = literal_type(default);
        if !ty.accepts(&default_ty) {
            self.diagnostics.push(rules::type_mismatch::diagnostic(
                default.span,
                ty,
                &default_ty,
                "the default value",
            ));
            return None;
        }
        super::test_defs::literal_json(default).ok()
    }

    fn trigger(&mut self, decl: &Declaration, name: &ast::Ident, fields: &[ast::FieldDecl]) {
        let fields = self.fields(fields);
        let mut opens_window = None;
        let mut reply = None;
        let mut correlate = None;
        for attr in &decl.attributes {
            if !attr.options.is_empty() {
                self.diagnostics
                    .push(rules::unknown_attribute::diagnostic(attr, "trigger"));
                continue;
            }
            match (attr.name.name.as_str(), attr.args.as_slice()) {
                ("reply", [field]) => match fields.iter().find(|f| f.name == field.name) {
                    Some(f) if f.ty.non_optional().is_text() => reply = Some(field.name.clone()),
                    _ => self.diagnostics.push(rules::unknown_attribute::bad_path(
                        attr,
                        field,
                        "names no text field of the trigger",
                    )),
                },
                ("correlate", [field]) => match fields.iter().find(|f| f.name == field.name) {
                    Some(f) if !matches!(f.ty, Ty::Optional(_)) => {
                        correlate = Some(field.name.clone())
                    }
                    _ => self.diagnostics.push(rules::unknown_attribute::bad_path(
                        attr,
                        field,
                        "names no required field of the trigger",
                    )),
                },
                ("opens_window", [field]) => match fields.iter().find(|f| f.name == field.name) {
                    Some(f) if Ty::Phone.accepts(&f.ty) && !matches!(f.ty, Ty::Optional(_)) => {
                        opens_window = Some(field.name.clone())
                    }
                    _ => self
                        .diagnostics
                        .push(rules::unknown_attribute::not_a_phone_field(
                            attr, field, "field",
                        )),
                },
                _ => self
                    .diagnostics
                    .push(rules::unknown_attribute::diagnostic(attr, "trigger")),
            }
        }
        let mut by_name: Vec<usize> = (0..fields.len()).collect();
        by_name.sort_by(|&a, &b| fields[a].name.cmp(&fields[b].name));
        let names = by_name
            .iter()
            .map(|&i| fields[i].name.as_str().into())
            .collect();
        self.schemas.triggers.insert(
            name.name.clone(),
            TriggerSchema {
                name: name.name.clone(),
                by_name,
                names,
                fields: Arc::new(RecordTy {
                    name: Some(name.name.clone()),
                    fields,
                }),
                opens_window,
                reply,
                correlate,
                doc: decl.doc.clone(),
                span: name.span,
            },
        );
    }

    fn action(
        &mut self,
        decl: &Declaration,
        name: &ast::Ident,
        params: &[ast::Param],
        returns: Option<&TypeExpr>,
        raises: &[ast::Ident],
    ) {
        let mut schemas: Vec<ParamSchema> = Vec::new();
        for param in params {
            if let Some(first) = schemas.iter().find(|p| p.name == param.name.name) {
                self.diagnostics
                    .push(rules::duplicate_definition::diagnostic(
                        "parameter",
                        &param.name.name,
                        param.name.span,
                        first.span,
                    ));
                continue;
            }
            let (ty, limits) = self.type_expr(&param.ty);
            if let Some(default) = &param.default {
                let default_ty = literal_type(default);
                if !ty.accepts(&default_ty) {
                    self.diagnostics.push(rules::type_mismatch::diagnostic(
                        default.span,
                        &ty,
                        &default_ty,
                        "the default value",
                    ));
                }
            }
            schemas.push(ParamSchema {
                name: param.name.name.clone(),
                limited: super::limits::declares_limits(&ty, &limits),
                ty,
                limits,
                default: param.default.clone(),
                doc: param.doc.clone(),
                span: param.name.span,
            });
        }
        let returns = returns.map_or(Ty::Nothing, |t| self.type_expr(t).0);
        let mut raise_names = Vec::new();
        for kind in raises {
            if self.schemas.errors.contains_key(&kind.name) {
                raise_names.push(kind.name.clone());
            } else {
                let known: Vec<&str> = self.schemas.errors.keys().map(String::as_str).collect();
                self.diagnostics
                    .push(rules::unknown_error_kind::diagnostic(kind, &known));
            }
        }
        let mut requires_window = None;
        let mut one_of = Vec::new();
        let mut media = None;
        let mut offers = Vec::new();
        let mut across = Vec::new();
        let has_template = schemas.iter().any(|p| *p.ty.non_optional() == Ty::Template);
        for attr in &decl.attributes {
            if attr.name.name == "across" {
                across.extend(self.across(attr, &schemas));
                continue;
            }
            if !attr.options.is_empty() {
                self.diagnostics
                    .push(rules::unknown_attribute::diagnostic(attr, "action"));
                continue;
            }
            match (attr.name.name.as_str(), attr.args.as_slice()) {
                ("media", [kind]) => match MediaKind::from_name(&kind.name) {
                    Some(_) if schemas.iter().all(|p| p.name != "link" && p.name != "file") => {
                        self.diagnostics.push(rules::unknown_attribute::bad_path(
                            attr,
                            kind,
                            "needs an action with a `link` or `file` parameter",
                        ))
                    }
                    Some(found) => media = Some(found),
                    None => self.diagnostics.push(rules::unknown_attribute::bad_path(
                        attr,
                        kind,
                        "is no media kind: image, document, audio, video or sticker",
                    )),
                },
                ("offers", [path]) => {
                    let steps: Vec<String> = path.name.split('.').map(String::from).collect();
                    match path_type(&schemas, &steps).map(Ty::non_optional) {
                        Some(ty) if ty.is_text() => offers.push(steps),
                        Some(Ty::List(element))
                            if has_template && steps.len() == 1 && element.is_text() =>
                        {
                            offers.push(steps)
                        }
                        _ => self.diagnostics.push(rules::unknown_attribute::bad_path(
                            attr,
                            path,
                            "leads to no text field of the parameters",
                        )),
                    }
                }
                ("requires_window", [param]) => match schemas.iter().find(|p| p.name == param.name)
                {
                    Some(p) if Ty::Phone.accepts(&p.ty) && !matches!(p.ty, Ty::Optional(_)) => {
                        requires_window = Some(param.name.clone())
                    }
                    _ => self
                        .diagnostics
                        .push(rules::unknown_attribute::not_a_phone_field(
                            attr,
                            param,
                            "parameter",
                        )),
                },
                ("one_of", args) if args.len() >= 2 => {
                    let mut group = Vec::new();
                    for arg in args {
                        match schemas.iter().find(|p| p.name == arg.name) {
                            Some(p) if !p.is_required() => group.push(arg.name.clone()),
                            _ => self.diagnostics.push(
                                rules::unknown_attribute::not_an_optional_parameter(attr, arg),
                            ),
                        }
                    }
                    one_of.push(group);
                }
                _ => self
                    .diagnostics
                    .push(rules::unknown_attribute::diagnostic(attr, "action")),
            }
        }
        self.schemas.actions.insert(
            name.name.clone(),
            ActionSchema {
                name: name.name.clone(),
                params: schemas,
                returns,
                raises: raise_names,
                requires_window,
                one_of,
                media,
                offers,
                across,
                doc: decl.doc.clone(),
                span: name.span,
            },
        );
    }
}

impl Resolver<'_> {
    /// `@across(PATH, min: N, max: N, unique: FIELD)`: the path must lead
    /// through lists of records to a list.
    fn across(&mut self, attr: &ast::Attribute, params: &[ParamSchema]) -> Option<AcrossLimits> {
        let [path] = attr.args.as_slice() else {
            self.diagnostics
                .push(rules::unknown_attribute::diagnostic(attr, "action"));
            return None;
        };
        let steps: Vec<String> = path.name.split('.').map(String::from).collect();
        let item_ty = match path_type(params, &steps).map(|ty| ty.non_optional().clone()) {
            Some(Ty::List(element)) if steps.len() >= 2 => *element,
            _ => {
                self.diagnostics.push(rules::unknown_attribute::bad_path(
                    attr,
                    path,
                    "leads to no list inside a list parameter",
                ));
                return None;
            }
        };
        let limits = self.list_limits(&attr.options, &item_ty);
        Some(AcrossLimits {
            path: steps,
            limits,
            item_ty,
        })
    }
}

/// The number of a `max: N` or `min: N` type argument.
fn count_arg(arg: &TypeArg) -> Option<usize> {
    match arg.value {
        TypeArgValue::Int(n) => usize::try_from(n).ok(),
        TypeArgValue::Name(_) => None,
    }
}

/// The field `name` of the records a type holds (through lists and `?`).
fn record_field<'t>(ty: &'t Ty, name: &str) -> Option<&'t FieldTy> {
    match ty.non_optional() {
        Ty::List(element) => record_field(element, name),
        Ty::Record(record) => record.field(name),
        _ => None,
    }
}

/// The type a path of a parameter and record fields leads to; lists on the
/// way are stepped into (`sections.rows.id`: the id of each row of each
/// section).
pub(crate) fn path_type<'t>(params: &'t [ParamSchema], steps: &[String]) -> Option<&'t Ty> {
    let (first, rest) = steps.split_first()?;
    let mut ty = &params.iter().find(|p| &p.name == first)?.ty;
    for step in rest {
        ty = &record_field(ty, step)?.ty;
    }
    Some(ty)
}

/// The type of a literal default value.
fn literal_type(expr: &ast::Expr) -> Ty {
    match &expr.kind {
        ast::ExprKind::Str(_) => Ty::String,
        ast::ExprKind::Int(_) => Ty::Int,
        ast::ExprKind::Float(_) => Ty::Float,
        ast::ExprKind::Bool(_) => Ty::Bool,
        ast::ExprKind::None => Ty::NoneValue,
        ast::ExprKind::Duration(_) => Ty::Duration,
        _ => Ty::Unknown,
    }
}

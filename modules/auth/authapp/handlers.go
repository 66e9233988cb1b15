package authapp

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/chacc/chacc/sdk"
)

// api serves the module's routes over HTTP.
type api struct {
	rt  *sdk.Runtime
	svc *service
}

// handler returns the echo instance serving every route in [routes]. Echo
// sees the full path the client called, prefix included.
func (a *api) handler() http.Handler {
	e := echo.New()
	e.HTTPErrorHandler = a.handleError
	g := e.Group(prefix)
	g.POST("/register", a.register)
	g.POST("/verify-email", a.verifyEmail)
	g.POST("/resend-verification", a.resendVerification)
	g.POST("/login", a.login)
	g.POST("/token", a.login)
	g.POST("/refresh", a.refresh)
	g.POST("/logout", a.logout)
	g.GET("/me", a.me)
	g.POST("/password-reset", a.passwordReset)
	g.POST("/password-reset/confirm", a.confirmPasswordReset)
	g.POST("/api-keys", a.createAPIKey)
	g.GET("/api-keys", a.listAPIKeys)
	g.DELETE("/api-keys/:id", a.deleteAPIKey)
	g.GET("/users", a.listUsers)
	g.PATCH("/users/:id", a.patchUser)
	return e
}

// userView is a user as the API shows it: never the password hash.
type userView struct {
	ID            string     `json:"id"`
	Email         string     `json:"email"`
	Username      *string    `json:"username"`
	DisplayName   string     `json:"display_name"`
	Role          string     `json:"role"`
	IsActive      bool       `json:"is_active"`
	EmailVerified bool       `json:"email_verified"`
	CreatedAt     time.Time  `json:"created_at"`
	LastLoginAt   *time.Time `json:"last_login_at"`
}

func viewUser(u *user) userView {
	return userView{
		ID: u.ID, Email: u.Email, Username: u.Username, DisplayName: u.DisplayName, Role: u.Role,
		IsActive: u.IsActive, EmailVerified: u.EmailVerifiedAt != nil, CreatedAt: u.CreatedAt, LastLoginAt: u.LastLoginAt,
	}
}

// tokenResponse is the answer to login, token and refresh.
type tokenResponse struct {
	AccessToken  string   `json:"access_token"`
	RefreshToken string   `json:"refresh_token"`
	TokenType    string   `json:"token_type"`
	ExpiresIn    int      `json:"expires_in"`
	User         userView `json:"user"`
}

func viewSession(s *session) tokenResponse {
	return tokenResponse{
		AccessToken: s.AccessToken, RefreshToken: s.RefreshToken, TokenType: "bearer",
		ExpiresIn: s.ExpiresIn, User: viewUser(s.User),
	}
}

// message is a plain confirmation.
type message struct {
	Message string `json:"message"`
}

func (a *api) register(c echo.Context) error {
	var in registerInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	u, err := a.svc.register(c.Request().Context(), in)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, viewUser(u))
}

// codeInput is the body of verify-email, resend-verification and
// password-reset.
type codeInput struct {
	Email string `json:"email"`
	Code  string `json:"code"`
}

func (a *api) verifyEmail(c echo.Context) error {
	var in codeInput
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	u, err := a.svc.verifyEmail(c.Request().Context(), in.Email, in.Code)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"message": "Email verified.", "user": viewUser(u)})
}

func (a *api) resendVerification(c echo.Context) error {
	var in struct {
		Email string `json:"email"`
	}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if err := a.svc.resendVerification(c.Request().Context(), in.Email); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, message{"If the account exists and is not verified yet, a new code has been sent."})
}

// loginInput is the JSON body of login and token. The OAuth2 fields a
// client may send to /token are accepted; scope and client are ignored.
type loginInput struct {
	Email        string `json:"email"`
	Username     string `json:"username"`
	Password     string `json:"password"`
	GrantType    string `json:"grant_type"`
	Scope        string `json:"scope"`
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
}

// login serves POST /login and its alias POST /token, with a JSON body or
// an OAuth2 password grant form (grant_type=password, username, password).
func (a *api) login(c echo.Context) error {
	var in loginInput
	req := c.Request()
	if mt, _, _ := mime.ParseMediaType(req.Header.Get(echo.HeaderContentType)); mt == echo.MIMEApplicationForm {
		req.Body = http.MaxBytesReader(c.Response(), req.Body, maxBody)
		if err := req.ParseForm(); err != nil {
			if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
				return errTooLarge()
			}
			return newError(http.StatusBadRequest, "INVALID_FORM", "The form body could not be read.")
		}
		f := req.PostForm
		in = loginInput{Email: f.Get("email"), Username: f.Get("username"), Password: f.Get("password"), GrantType: f.Get("grant_type")}
	} else if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if in.GrantType != "" && in.GrantType != "password" {
		return newError(http.StatusBadRequest, "UNSUPPORTED_GRANT_TYPE", "Only grant_type=password is supported here; refresh with POST %s/refresh.", prefix)
	}
	name := in.Email
	if name == "" {
		name = in.Username
	}
	s, err := a.svc.login(req.Context(), name, in.Password)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, viewSession(s))
}

func (a *api) refresh(c echo.Context) error {
	var in struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	s, err := a.svc.refresh(c.Request().Context(), in.RefreshToken)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, viewSession(s))
}

func (a *api) logout(c echo.Context) error {
	p, err := caller(c, roleViewer, "")
	if err != nil {
		return err
	}
	if err := a.svc.logout(c.Request().Context(), p); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, message{"Logged out."})
}

func (a *api) me(c echo.Context) error {
	p, err := caller(c, roleViewer, "")
	if err != nil {
		return err
	}
	u, err := a.svc.userByID(c.Request().Context(), p.Subject)
	if err != nil {
		return err
	}
	if u == nil {
		return errUnauthenticated()
	}
	return c.JSON(http.StatusOK, viewUser(u))
}

func (a *api) passwordReset(c echo.Context) error {
	var in struct {
		Email string `json:"email"`
	}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if err := a.svc.requestPasswordReset(c.Request().Context(), in.Email); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, message{"If an account exists for this email, a password reset code has been sent."})
}

func (a *api) confirmPasswordReset(c echo.Context) error {
	var in struct {
		Email       string `json:"email"`
		Code        string `json:"code"`
		NewPassword string `json:"new_password"`
	}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if err := a.svc.confirmPasswordReset(c.Request().Context(), in.Email, in.Code, in.NewPassword); err != nil {
		return err
	}
	return c.JSON(http.StatusOK, message{"Password changed; every session was ended. Log in with the new password."})
}

// apiKeyView is an API key as the API shows it; Key only once, at creation.
type apiKeyView struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Key        string     `json:"key,omitempty"`
	Prefix     string     `json:"prefix"`
	Scopes     []string   `json:"scopes"`
	ExpiresAt  *time.Time `json:"expires_at"`
	Expired    bool       `json:"expired"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

func (a *api) viewAPIKey(k *apiKey, raw string) apiKeyView {
	scopes := k.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	return apiKeyView{
		ID: k.ID, Name: k.Name, Key: raw, Prefix: k.Prefix, Scopes: scopes, ExpiresAt: k.ExpiresAt,
		Expired: k.ExpiresAt != nil && !a.svc.now().Before(*k.ExpiresAt), CreatedAt: k.CreatedAt, LastUsedAt: k.LastUsedAt,
	}
}

func (a *api) createAPIKey(c echo.Context) error {
	p, err := caller(c, roleViewer, scopeAPIKeys)
	if err != nil {
		return err
	}
	var body struct {
		Name          string   `json:"name"`
		Scopes        []string `json:"scopes"`
		ExpiresAt     *string  `json:"expires_at"`
		ExpiresInDays *int     `json:"expires_in_days"`
		ExpiresDays   *int     `json:"expires_days"` // the reference's name
	}
	if err := decodeJSON(c, &body); err != nil {
		return err
	}
	in := apiKeyInput{Name: body.Name, Scopes: body.Scopes, ExpiresInDays: body.ExpiresInDays, ExpiresDays: body.ExpiresDays}
	if body.ExpiresAt != nil {
		t, err := time.Parse(time.RFC3339, *body.ExpiresAt)
		if err != nil {
			return invalid("Field 'expires_at' must be an RFC 3339 date-time, e.g. 2030-01-02T15:04:05Z.")
		}
		in.ExpiresAt = &t
	}
	k, raw, err := a.svc.createAPIKey(c.Request().Context(), p, in)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, a.viewAPIKey(k, raw))
}

func (a *api) listAPIKeys(c echo.Context) error {
	p, err := caller(c, roleViewer, scopeAPIKeys)
	if err != nil {
		return err
	}
	keys, err := a.svc.listAPIKeys(c.Request().Context(), p)
	if err != nil {
		return err
	}
	views := make([]apiKeyView, len(keys))
	for i := range keys {
		views[i] = a.viewAPIKey(&keys[i], "")
	}
	return c.JSON(http.StatusOK, map[string]any{"api_keys": views})
}

func (a *api) deleteAPIKey(c echo.Context) error {
	p, err := caller(c, roleViewer, scopeAPIKeys)
	if err != nil {
		return err
	}
	if err := a.svc.deleteAPIKey(c.Request().Context(), p, c.Param("id")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// Page sizes of GET /users.
const (
	defaultPageSize = 50
	maxPageSize     = 200
)

func (a *api) listUsers(c echo.Context) error {
	if _, err := caller(c, roleAdmin, scopeUsers); err != nil {
		return err
	}
	limit, err := intParam(c, "limit", defaultPageSize, 1, maxPageSize)
	if err != nil {
		return err
	}
	offset, err := intParam(c, "offset", 0, 0, 1<<31-1)
	if err != nil {
		return err
	}
	role := c.QueryParam("role")
	if role != "" && !slices.Contains(sdk.Roles, role) {
		return invalid("Parameter 'role' must be one of %s.", strings.Join(sdk.Roles, ", "))
	}
	q := strings.TrimSpace(c.QueryParam("q"))
	if len(q) > 254 {
		return invalid("Parameter 'q' is at most 254 characters.")
	}
	users, total, err := a.svc.listUsers(c.Request().Context(), role, q, limit, offset)
	if err != nil {
		return err
	}
	views := make([]userView, len(users))
	for i := range users {
		views[i] = viewUser(&users[i])
	}
	return c.JSON(http.StatusOK, map[string]any{"users": views, "total": total, "limit": limit, "offset": offset})
}

func (a *api) patchUser(c echo.Context) error {
	p, err := caller(c, roleAdmin, scopeUsers)
	if err != nil {
		return err
	}
	var in userPatch
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	u, err := a.svc.patchUser(c.Request().Context(), p, c.Param("id"), in)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, viewUser(u))
}

// caller returns the request's principal, as the core authenticated it, if
// it has role minRole and, when scopes restrict it, scope. The core enforces
// the routes' MinRole and Scopes already; this holds however the module is
// reached.
func caller(c echo.Context, minRole, scope string) (sdk.Principal, error) {
	p, ok := sdk.PrincipalFrom(c.Request().Context())
	if !ok {
		return sdk.Principal{}, errUnauthenticated()
	}
	if !p.HasRole(minRole) {
		return sdk.Principal{}, newError(http.StatusForbidden, "FORBIDDEN", "This needs the %s role.", minRole)
	}
	if scope != "" && restricted(p) && !p.HasScope(scope) {
		return sdk.Principal{}, newError(http.StatusForbidden, "INSUFFICIENT_SCOPE", "This needs the scope %q.", scope)
	}
	return p, nil
}

// intParam returns the query parameter name as an integer from lo to hi, or
// def when absent.
func intParam(c echo.Context, name string, def, lo, hi int) (int, error) {
	s := c.QueryParam(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < lo || n > hi {
		return 0, invalid("Parameter '%s' must be an integer from %d to %d.", name, lo, hi)
	}
	return n, nil
}

func errTooLarge() error {
	return newError(http.StatusRequestEntityTooLarge, "PAYLOAD_TOO_LARGE", "The body is larger than %d bytes.", maxBody)
}

// decodeJSON reads the body, one JSON object of at most maxBody bytes with
// no unknown fields, into v. Its errors name what is wrong: 400 for a body
// that is not JSON, 422 for a field of the wrong type or an unknown one.
func decodeJSON(c echo.Context, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(c.Response(), c.Request().Body, maxBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, extra := dec.Token(); extra != io.EOF {
			return newError(http.StatusBadRequest, "INVALID_JSON", "The body must hold a single JSON object.")
		}
		return nil
	}
	var (
		syntax    *json.SyntaxError
		typeError *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, new(*http.MaxBytesError)):
		return errTooLarge()
	case errors.Is(err, io.EOF):
		return newError(http.StatusBadRequest, "INVALID_JSON", "The body must be a JSON object.")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return newError(http.StatusBadRequest, "INVALID_JSON", "The body is cut short: not valid JSON.")
	case errors.As(err, &syntax):
		return newError(http.StatusBadRequest, "INVALID_JSON", "The body is not valid JSON (at byte %d).", syntax.Offset)
	case errors.As(err, &typeError):
		if typeError.Field == "" {
			return newError(http.StatusBadRequest, "INVALID_JSON", "The body must be a JSON object.")
		}
		return invalid("Field '%s': expected %s, got %s.", typeError.Field, describeType(typeError.Type), article(typeError.Value))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return invalid("Unknown field '%s'.", field)
	default:
		return newError(http.StatusBadRequest, "INVALID_JSON", "The body is not valid JSON.")
	}
}

// article puts "a" or "an" before a JSON type name.
func article(s string) string {
	if strings.ContainsAny(s[:min(1, len(s))], "aeiou") {
		return "an " + s
	}
	return "a " + s
}

// describeType names a Go type for a client.
func describeType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Slice:
		return "an array of " + strings.TrimPrefix(strings.TrimPrefix(describeType(t.Elem()), "a "), "an ") + "s"
	default:
		return fmt.Sprintf("a %s", t.Kind())
	}
}

// errorBody is the one error shape of chacc.
type errorBody struct {
	Detail    string `json:"detail"`
	ErrorCode string `json:"error_code"`
	RequestID string `json:"request_id"`
}

// handleError renders every error a handler returns, and echo's own (404,
// 405), in the chacc error shape with the request id the core assigned.
// Other errors are logged and shown only as "Internal error.".
func (a *api) handleError(err error, c echo.Context) {
	ctx := c.Request().Context()
	if c.Response().Committed {
		a.rt.Logger().WarnContext(ctx, "request failed after the response started", "error", err.Error())
		return
	}
	e, ok := errors.AsType[*apiError](err)
	if !ok {
		if ee, isEcho := errors.AsType[*echo.HTTPError](err); isEcho {
			e = &apiError{Status: ee.Code, Code: errorCode(ee.Code), Detail: fmt.Sprint(ee.Message) + "."}
		} else {
			a.rt.Logger().ErrorContext(ctx, "request failed", "error", err.Error(), "path", c.Request().URL.Path)
			e = &apiError{Status: http.StatusInternalServerError, Code: "INTERNAL_ERROR", Detail: "Internal error."}
		}
	}
	if e.RetryAfter > 0 {
		c.Response().Header().Set("Retry-After", strconv.Itoa(secondsCeil(e.RetryAfter)))
	}
	if e.Status == http.StatusUnauthorized {
		c.Response().Header().Set("WWW-Authenticate", `Bearer realm="chacc"`)
	}
	if err := c.JSON(e.Status, errorBody{Detail: e.Detail, ErrorCode: e.Code, RequestID: sdk.RequestFrom(ctx).ID}); err != nil {
		a.rt.Logger().WarnContext(ctx, "writing the error response failed", "error", err.Error())
	}
}

// errorCode names an HTTP status in UPPER_SNAKE: 404 is "NOT_FOUND".
func errorCode(status int) string {
	return strings.ToUpper(strings.ReplaceAll(http.StatusText(status), " ", "_"))
}

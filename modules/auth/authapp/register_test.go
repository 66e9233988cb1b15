package authapp

import (
	"bufio"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/chacc/chacc/sdk"
)

func TestRegister(t *testing.T) {
	eachDatabase(t, func(t *testing.T, db *sdk.Database) {
		e := start(t, options{db: db})
		resp, got := e.do(http.MethodPost, "/register", map[string]string{
			"email": "Alice@Example.com", "password": password, "display_name": "Alice", "username": "Alice.B",
		})
		require.Equal(t, http.StatusCreated, resp.StatusCode, "body: %v", got)
		assert.Equal(t, "alice@example.com", got["email"])
		assert.Equal(t, "alice.b", got["username"])
		assert.Equal(t, "Alice", got["display_name"])
		assert.Equal(t, "viewer", got["role"])
		assert.Equal(t, true, got["is_active"])
		assert.Equal(t, false, got["email_verified"])
		assert.NotEmpty(t, got["id"])
		for k := range got {
			assert.NotContains(t, strings.ToLower(k), "password")
		}

		// The event, and a verification code on its way.
		events := e.h.Published()
		require.Len(t, events, 1)
		assert.Equal(t, "auth.user_registered", events[0].Type)
		var data map[string]any
		require.NoError(t, events[0].Decode(&data))
		assert.Equal(t, got["id"], data["user_id"])
		assert.Regexp(t, `^\d{6}$`, e.code("alice@example.com", purposeVerifyEmail))

		// Without display name: the email's local part.
		_, other := e.do(http.MethodPost, "/register", map[string]string{"email": "bob@example.com", "password": password})
		assert.Equal(t, "bob", other["display_name"])

		tests := []struct {
			name   string
			body   any
			status int
			code   string
			detail string
		}{
			{"duplicate email, other case", map[string]string{"email": "ALICE@example.com", "password": password}, 409, "EMAIL_TAKEN", "already exists"},
			{"duplicate username", map[string]string{"email": "carol@example.com", "password": password, "username": "alice.b"}, 409, "USERNAME_TAKEN", "taken"},
			{"short password", map[string]string{"email": "c@example.com", "password": "Ab1!"}, 422, "WEAK_PASSWORD", "at least 8 characters"},
			{"no upper case", map[string]string{"email": "c@example.com", "password": "abcdefg1!"}, 422, "WEAK_PASSWORD", "upper-case"},
			{"no lower case", map[string]string{"email": "c@example.com", "password": "ABCDEFG1!"}, 422, "WEAK_PASSWORD", "lower-case"},
			{"no digit", map[string]string{"email": "c@example.com", "password": "Abcdefgh!"}, 422, "WEAK_PASSWORD", "digit"},
			{"no special", map[string]string{"email": "c@example.com", "password": "Abcdefgh1"}, 422, "WEAK_PASSWORD", "special"},
			{"no password", map[string]string{"email": "c@example.com"}, 422, "WEAK_PASSWORD", "'password'"},
			{"bad email", map[string]string{"email": "not-an-email", "password": password}, 422, "VALIDATION_ERROR", "'email'"},
			{"email with a name", map[string]string{"email": "C <c@example.com>", "password": password}, 422, "VALIDATION_ERROR", "'email'"},
			{"no email", map[string]string{"password": password}, 422, "VALIDATION_ERROR", "'email'"},
			{"bad username", map[string]string{"email": "c@example.com", "password": password, "username": "a@b"}, 422, "VALIDATION_ERROR", "'username'"},
			{"display name too long", map[string]string{"email": "c@example.com", "password": password, "display_name": strings.Repeat("x", 101)}, 422, "VALIDATION_ERROR", "'display_name'"},
			{"email not a string", `{"email": 5, "password": "x"}`, 422, "VALIDATION_ERROR", "'email'"},
			{"unknown field", `{"email": "c@example.com", "password": "Correct-Horse-1", "role": "admin"}`, 422, "VALIDATION_ERROR", "'role'"},
			{"not JSON", `email=c@example.com`, 400, "INVALID_JSON", "not valid JSON"},
			{"truncated JSON", `{"email": "c@example.com"`, 400, "INVALID_JSON", "JSON"},
			{"empty body", ``, 400, "INVALID_JSON", "JSON object"},
			{"an array", `[]`, 400, "INVALID_JSON", "JSON object"},
			{"two objects", `{} {}`, 400, "INVALID_JSON", "single"},
			{"too large", `{"email": "` + strings.Repeat("x", maxBody) + `"}`, 413, "PAYLOAD_TOO_LARGE", "larger"},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				resp, got := e.do(http.MethodPost, "/register", tc.body)
				assertError(t, resp, got, tc.status, tc.code)
				assert.Contains(t, got["detail"], tc.detail)
			})
		}
		assert.Len(t, e.h.Published(), 2, "failed registrations publish nothing")
	})
}

func TestRegistrationCanBeTurnedOff(t *testing.T) {
	e := start(t, options{settings: map[string]string{"AUTH_ALLOW_REGISTRATION": "false"}})
	resp, got := e.do(http.MethodPost, "/register", map[string]string{"email": "a@example.com", "password": password})
	assertError(t, resp, got, http.StatusForbidden, "REGISTRATION_DISABLED")
	// The admin still logs in.
	e.login(adminEmail, adminPassword)
}

func TestVerifyEmail(t *testing.T) {
	eachDatabase(t, func(t *testing.T, db *sdk.Database) {
		e := start(t, options{db: db})
		e.register("a@example.com")
		code := e.code("a@example.com", purposeVerifyEmail)
		require.NotEmpty(t, code)
		wrong := otherCode(code)

		resp, got := e.do(http.MethodPost, "/verify-email", map[string]string{"email": "a@example.com", "code": wrong})
		assertError(t, resp, got, http.StatusBadRequest, "INVALID_CODE")
		assert.Contains(t, got["detail"], "2 attempt(s) left")

		resp, got = e.do(http.MethodPost, "/verify-email", map[string]string{"email": "A@example.com", "code": code})
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %v", got)
		assert.Equal(t, true, got["user"].(map[string]any)["email_verified"])

		// A code is used once.
		resp, got = e.do(http.MethodPost, "/verify-email", map[string]string{"email": "a@example.com", "code": code})
		assertError(t, resp, got, http.StatusBadRequest, "INVALID_CODE")
		// An unknown address gets the same answer as a wrong code.
		resp, got = e.do(http.MethodPost, "/verify-email", map[string]string{"email": "nobody@example.com", "code": code})
		assertError(t, resp, got, http.StatusBadRequest, "INVALID_CODE")
		assert.Equal(t, "Invalid or expired code.", got["detail"])

		for _, bad := range []string{"", "12345", "1234567", "12a456"} {
			resp, got = e.do(http.MethodPost, "/verify-email", map[string]string{"email": "a@example.com", "code": bad})
			assertError(t, resp, got, http.StatusUnprocessableEntity, "VALIDATION_ERROR")
			assert.Contains(t, got["detail"], "'code'")
		}
		resp, got = e.do(http.MethodPost, "/verify-email", map[string]string{"code": code})
		assertError(t, resp, got, http.StatusUnprocessableEntity, "VALIDATION_ERROR")
	})
}

// otherCode returns a 6-digit code other than code.
func otherCode(code string) string {
	n, _ := strconv.Atoi(code)
	return strconv.Itoa(100000 + (n+1)%900000)
}

func TestVerificationAttemptsAreLimited(t *testing.T) {
	e := start(t, options{})
	e.register("a@example.com")
	code := e.code("a@example.com", purposeVerifyEmail)
	for i := range 3 {
		resp, got := e.do(http.MethodPost, "/verify-email", map[string]string{"email": "a@example.com", "code": otherCode(code)})
		want := "INVALID_CODE"
		if i == 2 {
			want = "CODE_ATTEMPTS_EXCEEDED"
		}
		assertError(t, resp, got, http.StatusBadRequest, want)
	}
	// Now even the right code fails...
	resp, got := e.do(http.MethodPost, "/verify-email", map[string]string{"email": "a@example.com", "code": code})
	assertError(t, resp, got, http.StatusBadRequest, "CODE_ATTEMPTS_EXCEEDED")

	// ...until a new one is sent.
	e.clock.Advance(time.Minute)
	resp, got = e.do(http.MethodPost, "/resend-verification", map[string]string{"email": "a@example.com"})
	require.Equal(t, http.StatusOK, resp.StatusCode, "body: %v", got)
	fresh := e.code("a@example.com", purposeVerifyEmail)
	resp, _ = e.do(http.MethodPost, "/verify-email", map[string]string{"email": "a@example.com", "code": fresh})
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

func TestVerificationCodeExpires(t *testing.T) {
	e := start(t, options{})
	e.register("a@example.com")
	code := e.code("a@example.com", purposeVerifyEmail)
	e.clock.Advance(15 * time.Minute)
	resp, got := e.do(http.MethodPost, "/verify-email", map[string]string{"email": "a@example.com", "code": code})
	assertError(t, resp, got, http.StatusBadRequest, "CODE_EXPIRED")
}

func TestResendVerification(t *testing.T) {
	eachDatabase(t, func(t *testing.T, db *sdk.Database) {
		e := start(t, options{db: db})
		e.register("a@example.com")
		first := e.code("a@example.com", purposeVerifyEmail)

		// At most once a minute per address: registering sent one.
		e.clock.Advance(20 * time.Second)
		resp, got := e.do(http.MethodPost, "/resend-verification", map[string]string{"email": "a@example.com"})
		assertError(t, resp, got, http.StatusTooManyRequests, "RATE_LIMITED")
		assert.Equal(t, "40", resp.Header.Get("Retry-After"))
		assert.Equal(t, 1, e.codeCount("a@example.com", purposeVerifyEmail))

		e.clock.Advance(40 * time.Second)
		resp, got = e.do(http.MethodPost, "/resend-verification", map[string]string{"email": "A@example.com"})
		require.Equal(t, http.StatusOK, resp.StatusCode, "body: %v", got)
		assert.Equal(t, 2, e.codeCount("a@example.com", purposeVerifyEmail))
		second := e.code("a@example.com", purposeVerifyEmail)

		// The new code replaces the old one.
		if first != second {
			resp, got = e.do(http.MethodPost, "/verify-email", map[string]string{"email": "a@example.com", "code": first})
			assertError(t, resp, got, http.StatusBadRequest, "INVALID_CODE")
		}
		resp, _ = e.do(http.MethodPost, "/verify-email", map[string]string{"email": "a@example.com", "code": second})
		require.Equal(t, http.StatusOK, resp.StatusCode)

		// Unknown and verified addresses get the same answer, and no code.
		e.clock.Advance(time.Minute)
		for _, email := range []string{"nobody@example.com", "a@example.com"} {
			resp, got = e.do(http.MethodPost, "/resend-verification", map[string]string{"email": email})
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Contains(t, got["message"], "If the account exists")
		}
		assert.Equal(t, 2, e.codeCount("a@example.com", purposeVerifyEmail))
		assert.Equal(t, 0, e.codeCount("nobody@example.com", purposeVerifyEmail))

		resp, got = e.do(http.MethodPost, "/resend-verification", `{}`)
		assertError(t, resp, got, http.StatusUnprocessableEntity, "VALIDATION_ERROR")
	})
}

func TestProductionWithoutSMTP(t *testing.T) {
	e := start(t, options{mode: "production"})
	assert.True(t, e.logged("no SMTP configured"), "Setup says codes cannot be delivered")

	e.register("a@example.com")
	assert.Empty(t, e.code("a@example.com", purposeVerifyEmail), "production never logs a code")
	assert.True(t, e.logged("could not be delivered"))

	resp, got := e.do(http.MethodPost, "/resend-verification", map[string]string{"email": "a@example.com"})
	assertError(t, resp, got, http.StatusServiceUnavailable, "EMAIL_UNAVAILABLE")
	assert.Contains(t, got["detail"], "AUTH_SMTP_HOST")
	// A password reset still answers 200: it tells nothing about accounts.
	resp, _ = e.do(http.MethodPost, "/password-reset", map[string]string{"email": "a@example.com"})
	assert.Equal(t, http.StatusOK, resp.StatusCode)
}

func TestCodesGoOutBySMTP(t *testing.T) {
	srv := newFakeSMTP(t)
	e := start(t, options{mode: "production", settings: map[string]string{
		"AUTH_SMTP_HOST": "127.0.0.1", "AUTH_SMTP_PORT": srv.port, "AUTH_SMTP_FROM": "auth@example.com",
	}})
	e.register("a@example.com")

	var mail fakeMail
	select {
	case mail = <-srv.mails:
	case <-time.After(10 * time.Second):
		t.Fatal("no email arrived")
	}
	assert.Equal(t, "<auth@example.com>", mail.from)
	assert.Equal(t, []string{"<a@example.com>"}, mail.to)
	assert.Contains(t, mail.data, "Subject: Your verification code")
	code := regexp.MustCompile(`\b\d{6}\b`).FindString(mail.data)
	require.NotEmpty(t, code)
	for _, l := range e.h.Logs() {
		for _, v := range l.GetAttrs() {
			assert.NotContains(t, v, code, "the code is not logged")
		}
		assert.NotContains(t, l.GetMessage(), code)
	}
	resp, got := e.do(http.MethodPost, "/verify-email", map[string]string{"email": "a@example.com", "code": code})
	assert.Equal(t, http.StatusOK, resp.StatusCode, "body: %v", got)
}

// fakeSMTP is the least SMTP server net/smtp talks to.
type fakeSMTP struct {
	port  string
	mails chan fakeMail
}

type fakeMail struct {
	from string
	to   []string
	data string
}

func newFakeSMTP(t *testing.T) *fakeSMTP {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { lis.Close() })
	_, port, _ := net.SplitHostPort(lis.Addr().String())
	s := &fakeSMTP{port: port, mails: make(chan fakeMail, 10)}
	go func() {
		for {
			conn, err := lis.Accept()
			if err != nil {
				return
			}
			go s.serve(conn)
		}
	}()
	return s
}

func (s *fakeSMTP) serve(conn net.Conn) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	reply := func(line string) { conn.Write([]byte(line + "\r\n")) }
	reply("220 fake ESMTP")
	var m fakeMail
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.TrimRight(line, "\r\n")
		switch upper := strings.ToUpper(cmd); {
		case strings.HasPrefix(upper, "EHLO"), strings.HasPrefix(upper, "HELO"):
			reply("250 fake")
		case strings.HasPrefix(upper, "MAIL FROM:"):
			m.from = cmd[len("MAIL FROM:"):]
			reply("250 ok")
		case strings.HasPrefix(upper, "RCPT TO:"):
			m.to = append(m.to, cmd[len("RCPT TO:"):])
			reply("250 ok")
		case upper == "DATA":
			reply("354 go on")
			var data strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				data.WriteString(l)
			}
			m.data = data.String()
			s.mails <- m
			reply("250 queued")
		case upper == "QUIT":
			reply("221 bye")
			return
		default:
			reply("250 ok")
		}
	}
}

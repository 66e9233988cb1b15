package authapp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/smtp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// smtpTimeout bounds one delivery, connection to QUIT.
const smtpTimeout = 30 * time.Second

// mailer delivers one-time codes: by SMTP when AUTH_SMTP_HOST is set; else,
// in development mode only, by writing them to the module's log; else not at
// all (production without SMTP), which Setup and every attempt warn about.
type mailer struct {
	smtp smtpConfig
	dev  bool
	log  *slog.Logger
	wg   sync.WaitGroup
}

// available reports whether codes reach their recipient somehow.
func (m *mailer) available() bool { return m.smtp.Host != "" || m.dev }

// sendCode delivers code to the address to. SMTP runs in the background, so
// that a request takes as long whether or not an email goes out (no account
// enumeration by timing) and a slow server holds no request; failures are
// logged.
func (m *mailer) sendCode(ctx context.Context, to, purpose, code string) {
	subject, text := "Your verification code", "Your email verification code is %s. It expires in %d minutes."
	if purpose == purposePasswordReset {
		subject, text = "Your password reset code", "Your password reset code is %s. It expires in %d minutes. If you did not ask for it, ignore this email."
	}
	body := fmt.Sprintf(text, code, int(codeTTL/time.Minute))
	switch {
	case m.smtp.Host != "":
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			if err := m.deliver(to, subject, body); err != nil {
				m.log.ErrorContext(ctx, "sending a code by email failed", "purpose", purpose, "error", err.Error())
			}
		}()
	case m.dev:
		m.log.InfoContext(ctx, "one-time code (development mode, no SMTP configured)", "email", to, "purpose", purpose, "code", code)
	default:
		m.log.WarnContext(ctx, "a one-time code could not be delivered: production mode and no SMTP configured (set AUTH_SMTP_HOST)", "purpose", purpose)
	}
}

// wait waits for the deliveries under way.
func (m *mailer) wait() { m.wg.Wait() }

// deliver sends one plain-text email, with STARTTLS when the server offers
// it, or over TLS from the start on port 465.
func (m *mailer) deliver(to, subject, body string) error {
	if strings.ContainsAny(to+m.smtp.From, "\r\n") {
		return errors.New("address holds a line break")
	}
	addr := net.JoinHostPort(m.smtp.Host, strconv.Itoa(m.smtp.Port))
	tlsConfig := &tls.Config{ServerName: m.smtp.Host, MinVersion: tls.VersionTLS12}
	dialer := &net.Dialer{Timeout: smtpTimeout}
	var conn net.Conn
	var err error
	if m.smtp.Port == 465 {
		conn, err = tls.DialWithDialer(dialer, "tcp", addr, tlsConfig)
	} else {
		conn, err = dialer.Dial("tcp", addr)
	}
	if err != nil {
		return err
	}
	conn.SetDeadline(time.Now().Add(smtpTimeout))
	c, err := smtp.NewClient(conn, m.smtp.Host)
	if err != nil {
		conn.Close()
		return err
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); ok && m.smtp.Port != 465 {
		if err := c.StartTLS(tlsConfig); err != nil {
			return err
		}
	}
	if m.smtp.Username != "" {
		// PlainAuth refuses to send the password unencrypted, but to localhost.
		if err := c.Auth(smtp.PlainAuth("", m.smtp.Username, m.smtp.Password, m.smtp.Host)); err != nil {
			return err
		}
	}
	if err := c.Mail(m.smtp.From); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	msg := "From: " + m.smtp.From + "\r\nTo: " + to + "\r\nSubject: " + subject +
		"\r\nDate: " + time.Now().Format(time.RFC1123Z) +
		"\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + body + "\r\n"
	if _, err := w.Write([]byte(msg)); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// warnAboutMail says at start-up how codes will be delivered.
func (s *service) warnAboutMail(ctx context.Context) {
	switch {
	case s.mail.smtp.Host != "":
		s.log.InfoContext(ctx, "one-time codes are sent by email", "smtp_host", s.mail.smtp.Host, "smtp_port", s.mail.smtp.Port)
	case s.mail.dev:
		s.log.InfoContext(ctx, "no SMTP configured (AUTH_SMTP_HOST): development mode writes verification and password reset codes to this log")
	default:
		s.log.WarnContext(ctx, "no SMTP configured (AUTH_SMTP_HOST): verification and password reset codes cannot be delivered in production mode")
		if s.cfg.RequireVerifiedEmail {
			s.log.ErrorContext(ctx, "AUTH_REQUIRE_VERIFIED_EMAIL is true but codes cannot be delivered: new users cannot log in until SMTP is configured")
		}
	}
}

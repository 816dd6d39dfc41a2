package main

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/zest-attest/zest/policygen"
	"github.com/zest-attest/zest/policygen/dsse"
	"github.com/zest-attest/zest/schema"
)

// loadPolicy reads a runtime policy, unwrapping a DSSE envelope without
// checking its signature (use "zest policy verify" for that).
func loadPolicy(name string) (*policygen.RuntimePolicy, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	if dsse.IsEnvelope(data) {
		env, err := dsse.ParseEnvelope(data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		data = env.Payload
	}
	return policygen.ParseRuntimePolicy(data, name)
}

type validateResult struct {
	File   string          `json:"file"`
	Kind   string          `json:"kind"`
	Signed bool            `json:"signed"`
	Valid  bool            `json:"valid"`
	Errors []validateError `json:"errors"`
}

type validateError struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

func (a *app) policyValidateCmd() *cobra.Command {
	var (
		asJSON bool
		kind   string
		strict bool
	)
	c := &cobra.Command{
		Use:   "validate FILE...",
		Short: "Check runtime policies and measured-boot reference states against zest's schemas",
		Long: `Validate runtime policies and measured-boot reference states (the kind is
detected from the keys unless --kind is given; a DSSE envelope is checked by
its payload). Every error is reported, each with its JSON path. Exit status 1
if any file is invalid.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var results []validateResult
			bad := 0
			for _, f := range args {
				r := validateResult{File: f}
				var errs []schema.Error
				data, err := os.ReadFile(f)
				if err != nil {
					return err
				}
				if dsse.IsEnvelope(data) {
					env, err := dsse.ParseEnvelope(data)
					if err != nil {
						errs = append(errs, schema.Error{Path: "$", Msg: "DSSE envelope: " + err.Error()})
					} else {
						data, r.Signed = env.Payload, true
					}
				}
				k := schema.Kind(kind)
				if len(errs) == 0 && k == "" {
					if k, err = schema.Detect(data); err != nil {
						errs = append(errs, schema.Error{Path: "$", Msg: err.Error()})
					}
				}
				if len(errs) == 0 {
					errs = schema.Validate(k, data, schema.Options{Strict: strict})
				}
				r.Errors = []validateError{}
				for _, e := range errs {
					r.Errors = append(r.Errors, validateError{Path: e.Path, Message: e.Msg})
				}
				r.Kind = string(k)
				r.Valid = len(r.Errors) == 0
				if !r.Valid {
					bad++
				}
				results = append(results, r)
			}
			if asJSON {
				if err := writeJSON(a, results); err != nil {
					return err
				}
			} else {
				for _, r := range results {
					if r.Valid {
						fmt.Fprintf(a.stdout, "%s: valid %s\n", r.File, r.Kind)
						continue
					}
					for _, e := range r.Errors {
						fmt.Fprintf(a.stdout, "%s: %s: %s\n", r.File, e.Path, e.Message)
					}
				}
			}
			if bad > 0 {
				return &exitError{code: exitFailure, err: fmt.Errorf("%d of %d files invalid", bad, len(args))}
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "machine-readable output")
	c.Flags().StringVar(&kind, "kind", "", "runtime-policy or mb-refstate (default: detect)")
	c.Flags().BoolVar(&strict, "strict", false, "also reject keys Keylime does not know")
	return c
}

func (a *app) policySignCmd() *cobra.Command {
	var (
		keyFile, backend, certOut, out string
	)
	c := &cobra.Command{
		Use:   "sign POLICY",
		Short: "Sign a runtime policy into a DSSE envelope, as keylime-policy sign runtime does",
		Long: `Validate a runtime policy and sign it into a DSSE envelope that Keylime's
verifier accepts: payloadType application/vnd.keylime+json, ECDSA (SHA-256)
over the DSSE PAE of the policy re-serialised as Keylime does. Backends:
ecdsa (keyid = SHA-256 of the public key PEM; Keylime's default) and x509
(a fresh self-signed certificate in the keyid, also written to --cert-out).
An RSA key gives an RSASSA-PSS signature that zest verifies but Keylime does
not.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if keyFile == "" {
				return usageErrorf("--key is required")
			}
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			if dsse.IsEnvelope(data) {
				return fmt.Errorf("%s is already a DSSE envelope", args[0])
			}
			if _, err := policygen.ParseRuntimePolicy(data, args[0]); err != nil {
				return err
			}
			kb, err := os.ReadFile(keyFile)
			if err != nil {
				return err
			}
			priv, err := dsse.LoadPrivateKey(kb)
			if err != nil {
				return fmt.Errorf("%s: %w", keyFile, err)
			}
			var signer dsse.Signer
			var certPEM []byte
			switch backend {
			case "ecdsa":
				switch k := priv.(type) {
				case *ecdsa.PrivateKey:
					signer, err = dsse.NewECDSASigner(k)
				case *rsa.PrivateKey:
					signer, err = dsse.NewRSASigner(k)
					a.note("note: RSA signatures are a zest extension; Keylime verifies only ECDSA envelopes")
				default:
					return fmt.Errorf("%s: unsupported key type %T", keyFile, priv)
				}
			case "x509":
				k, ok := priv.(*ecdsa.PrivateKey)
				if !ok {
					return fmt.Errorf("%s: the x509 backend needs an EC key", keyFile)
				}
				if certOut == "" {
					return usageErrorf("--cert-out is required with --backend x509")
				}
				var xs *dsse.X509Signer
				xs, certPEM, err = dsse.NewX509Signer(k)
				signer = xs
			default:
				return usageErrorf("--backend %q: want ecdsa or x509", backend)
			}
			if err != nil {
				return err
			}
			env, err := dsse.SignJSON(data, signer)
			if err != nil {
				return err
			}
			if certPEM != nil {
				if err := a.writeOutput(certOut, certPEM); err != nil {
					return err
				}
			}
			return a.writeOutput(out, env.MarshalKeylime())
		},
	}
	c.Flags().StringVarP(&keyFile, "key", "k", "", "private key `FILE` (PEM: EC, PKCS#8 or RSA)")
	c.Flags().StringVarP(&backend, "backend", "b", "ecdsa", "ecdsa or x509")
	c.Flags().StringVarP(&certOut, "cert-out", "c", "", "with --backend x509: write the signing certificate to `FILE`")
	c.Flags().StringVarP(&out, "output", "o", "", "write the envelope to `FILE` atomically (default: stdout)")
	return c
}

func (a *app) policyVerifyCmd() *cobra.Command {
	var (
		keyFiles   []string
		caFile     string
		out        string
		noValidate bool
	)
	c := &cobra.Command{
		Use:   "verify ENVELOPE",
		Short: "Verify a DSSE-signed runtime policy (Keylime's or zest's)",
		Long: `Verify the signature of a DSSE envelope with the given public keys or
certificates (--key), or, for x509 envelopes, by chaining the embedded
certificate to --ca. A certificate inside the envelope is never trusted by
itself. On success the payload is validated as a runtime policy and written
to --output if given. Exit status 1 if the signature or payload is bad.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(keyFiles) == 0 && caFile == "" {
				return usageErrorf("give --key or --ca: zest never trusts a key taken from the envelope itself")
			}
			data, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			env, err := dsse.ParseEnvelope(data)
			if err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			var keys []crypto.PublicKey
			for _, f := range keyFiles {
				kb, err := os.ReadFile(f)
				if err != nil {
					return err
				}
				k, err := dsse.LoadPublicKey(kb)
				if err != nil {
					return fmt.Errorf("%s: %w", f, err)
				}
				keys = append(keys, k)
			}
			var payload []byte
			if caFile != "" {
				pemData, err := os.ReadFile(caFile)
				if err != nil {
					return err
				}
				pool := x509.NewCertPool()
				if !pool.AppendCertsFromPEM(pemData) {
					return fmt.Errorf("%s: no PEM certificates", caFile)
				}
				payload, _, err = dsse.VerifyX509(env, pool)
				if err != nil && len(keys) > 0 {
					payload, err = dsse.Verify(env, keys...)
				}
				if err != nil {
					return fmt.Errorf("%s: signature not verified: %w", args[0], err)
				}
			} else if payload, err = dsse.Verify(env, keys...); err != nil {
				return fmt.Errorf("%s: signature not verified: %w", args[0], err)
			}
			a.note("%s: signature verified", args[0])
			if !noValidate {
				if _, err := policygen.ParseRuntimePolicy(payload, args[0]+" payload"); err != nil {
					return err
				}
			}
			if out != "" {
				if err := a.writeOutput(out, payload); err != nil {
					return err
				}
			}
			if !noValidate {
				a.note("%s: payload is a valid runtime policy", args[0])
			}
			return nil
		},
	}
	c.Flags().StringArrayVarP(&keyFiles, "key", "k", nil, "trusted public key or certificate `FILE` (PEM or DER; repeatable)")
	c.Flags().StringVar(&caFile, "ca", "", "for x509 envelopes: trust certificates chaining to the PEM CA `FILE`")
	c.Flags().StringVarP(&out, "output", "o", "", "write the verified payload to `FILE`")
	c.Flags().BoolVar(&noValidate, "no-validate", false, "check the signature only, not the payload's schema")
	return c
}

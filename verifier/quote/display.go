package quote

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
)

// JSON renderings for display. Everything a *Quote holds is unverified;
// its JSON says so with "verified": false. Byte strings are hex.

type selectionJSON struct {
	Hash         Alg   `json:"hash"`
	SizeofSelect int   `json:"sizeofSelect"`
	PCRs         []int `json:"pcrs"`
}

// MarshalJSON renders {"hash":"sha256","sizeofSelect":3,"pcrs":[0,7]}.
func (s PCRSelection) MarshalJSON() ([]byte, error) {
	pcrs := s.PCRs()
	if pcrs == nil {
		pcrs = []int{}
	}
	return json.Marshal(selectionJSON{s.Hash, len(s.Select), pcrs})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *PCRSelection) UnmarshalJSON(b []byte) error {
	var j selectionJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	if j.SizeofSelect < 0 || j.SizeofSelect > maxSelect {
		return fmt.Errorf("sizeofSelect %d out of range", j.SizeofSelect)
	}
	*s = PCRSelection{Hash: j.Hash, Select: make([]byte, j.SizeofSelect)}
	for _, p := range j.PCRs {
		if p < 0 || p >= 8*j.SizeofSelect {
			return fmt.Errorf("PCR %d does not fit sizeofSelect %d", p, j.SizeofSelect)
		}
		s.Select[p/8] |= 1 << (p % 8)
	}
	return nil
}

// MarshalJSON renders the TPMS_ATTEST fields with hex byte strings.
func (a *Attest) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Magic           string         `json:"magic"`
		Type            string         `json:"type"`
		QualifiedSigner string         `json:"qualifiedSigner"`
		ExtraData       string         `json:"extraData"`
		ClockInfo       ClockInfo      `json:"clockInfo"`
		FirmwareVersion string         `json:"firmwareVersion"`
		PCRSelect       []PCRSelection `json:"pcrSelect,omitempty"`
		PCRDigest       string         `json:"pcrDigest,omitempty"`
		Attested        string         `json:"attested,omitempty"`
	}{
		fmt.Sprintf("0x%08x", a.Magic), fmt.Sprintf("0x%04x", a.Type),
		hex.EncodeToString(a.QualifiedSigner), hex.EncodeToString(a.ExtraData),
		a.ClockInfo, fmt.Sprintf("0x%016x", a.FirmwareVersion),
		a.PCRSelect, hex.EncodeToString(a.PCRDigest), hex.EncodeToString(a.Attested),
	})
}

// MarshalJSON renders the TPMT_SIGNATURE with hex byte strings.
func (s *Signature) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Alg  Alg    `json:"sigAlg"`
		Hash Alg    `json:"hash"`
		RSA  string `json:"rsa,omitempty"`
		R    string `json:"r,omitempty"`
		S    string `json:"s,omitempty"`
		HMAC string `json:"hmac,omitempty"`
	}{s.Alg, s.Hash, hex.EncodeToString(s.RSA), hex.EncodeToString(s.R), hex.EncodeToString(s.S), hex.EncodeToString(s.HMAC)})
}

// MarshalJSON renders the pcrblob's claimed selection and its values by
// bank and PCR index, in the pcrblob's own order (unverified: the blob is
// not signed).
func (p *PCRBlob) MarshalJSON() ([]byte, error) {
	values := p.Values()
	byBank := map[string]map[string]string{}
	n := 0
	for _, s := range p.Selection {
		m := byBank[s.Hash.String()]
		if m == nil {
			m = map[string]string{}
			byBank[s.Hash.String()] = m
		}
		for _, i := range s.PCRs() {
			if n < len(values) {
				m[strconv.Itoa(i)] = hex.EncodeToString(values[n])
			}
			n++
		}
	}
	return json.Marshal(struct {
		Selection []PCRSelection               `json:"selection"`
		Lists     int                          `json:"digestLists"`
		PCRs      map[string]map[string]string `json:"pcrs"`
	}{p.Selection, len(p.Lists), byBank})
}

// MarshalJSON renders the parsed, unverified quote for display:
// {"verified":false,"attest":{…},"signature":{…},"pcrblob":{…}}.
func (q *Quote) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Verified  bool       `json:"verified"`
		Attest    *Attest    `json:"attest"`
		Signature *Signature `json:"signature"`
		PCRBlob   *PCRBlob   `json:"pcrblob"`
	}{false, q.Attest, q.Signature, q.PCRBlob})
}

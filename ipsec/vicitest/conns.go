package vicitest

import "strings"

// listConn renders a loaded connection as charon 5.9.8 reports it in a
// list-conn event (`swanctl --list-conns --raw` against that charon):
//
//	list-conn event {dmvpn-responder {local_addrs=[192.0.2.1] remote_addrs=[%any]
//	  version=IKEv2 reauth_time=0 rekey_time=14400 unique=UNIQUE_REPLACE dpd_delay=30
//	  local-1 {id=192.0.2.1 class=pre-shared key groups=[] cert_policy=[] certs=[] cacerts=[]}
//	  remote-1 {id=%any class=pre-shared key ...}
//	  children {gre {mode=TRANSPORT rekey_time=3600 ... local-ts=[dynamic[gre]]
//	  remote-ts=[dynamic[gre]]}}}}
//
// Only the fields a client can compare with its request are rendered:
// addresses, version, the auth rounds' class and id, and each child's
// mode and traffic selectors (charon's defaults: tunnel mode, dynamic).
func listConn(name string, conf *Message) *Message {
	c := NewMessage()
	if conf == nil {
		return NewMessage().Set(name, c)
	}
	c.Set("local_addrs", orList(conf.List("local_addrs"), "%any"))
	c.Set("remote_addrs", orList(conf.List("remote_addrs"), "%any"))
	switch conf.String("version") {
	case "1":
		c.Set("version", "IKEv1")
	case "2":
		c.Set("version", "IKEv2")
	default:
		c.Set("version", "IKE")
	}
	classes := map[string]string{"psk": "pre-shared key", "pubkey": "public key"}
	for _, side := range []string{"local", "remote"} {
		a := conf.Section(side)
		if a == nil {
			continue
		}
		r := NewMessage()
		if id := a.String("id"); id != "" {
			r.Set("id", id)
		}
		r.Set("class", classes[a.String("auth")])
		c.Set(side+"-1", r)
	}
	children := NewMessage()
	if ch := conf.Section("children"); ch != nil {
		for _, cn := range ch.Keys() {
			cc := ch.Section(cn)
			if cc == nil {
				continue
			}
			mode := strings.ToUpper(cc.String("mode"))
			if mode == "" {
				mode = "TUNNEL"
			}
			children.Set(cn, NewMessage().Set("mode", mode).
				Set("local-ts", orList(cc.List("local_ts"), "dynamic")).
				Set("remote-ts", orList(cc.List("remote_ts"), "dynamic")))
		}
	}
	c.Set("children", children)
	return NewMessage().Set(name, c)
}

func orList(l []string, def string) []string {
	if len(l) == 0 {
		return []string{def}
	}
	return l
}

// hasChild reports whether a loaded connection (ike, or any when ike is
// empty) has a child named child; charon refuses to initiate anything
// else. Called with s.mu held.
func (s *Server) hasChild(ike, child string) bool {
	for _, name := range s.conns {
		if ike != "" && name != ike {
			continue
		}
		if ch := s.confs[name].Section("children"); ch != nil && ch.Section(child) != nil {
			return true
		}
	}
	return false
}

// ikeUpdown records the IKE SA of an ike-updown event: present while up.
// Called with s.mu held.
func (s *Server) ikeUpdown(msg *Message) {
	up := msg.String("up") == "yes"
	for _, conn := range msg.Keys() {
		sa := msg.Section(conn)
		if sa == nil {
			continue
		}
		if up {
			s.sas[sa.String("uniqueid")] = conn
		} else {
			delete(s.sas, sa.String("uniqueid"))
		}
	}
}

// terminate removes the IKE SAs matching ike (a connection name) or ikeID
// (a unique id) and reports whether there was any; charon refuses a
// terminate that matches nothing. Called with s.mu held.
func (s *Server) terminate(ike, ikeID string) bool {
	found := false
	for id, conn := range s.sas {
		if (ike != "" && conn == ike) || (ikeID != "" && id == ikeID) {
			delete(s.sas, id)
			found = true
		}
	}
	return found
}

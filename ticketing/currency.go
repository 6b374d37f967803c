package ticketing

import "strings"

// isoCurrencies holds the active alphabetic codes of ISO 4217 (List One,
// current funds and the X codes included, as published in 2025: HRK, SLL,
// ZWL and ANG, withdrawn, are not in it). Validate accepts exactly these.
var isoCurrencies = func() map[string]bool {
	const list = `
AED AFN ALL AMD AOA ARS AUD AWG AZN BAM BBD BDT BHD BIF BMD BND BOB BOV BRL BSD
BTN BWP BYN BZD CAD CDF CHE CHF CHW CLF CLP CNY COP COU CRC CUP CVE CZK DJF DKK
DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF
IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW KWD KYD KZT LAK LBP
LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD
NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD
SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD
TWD TZS UAH UGX USD USN UYI UYU UYW UZS VED VES VND VUV WST XAF XAG XAU XBA XBB
XBC XBD XCD XCG XDR XOF XPD XPF XPT XSU XTS XUA XXX YER ZAR ZMW ZWG`
	m := map[string]bool{}
	for _, code := range strings.Fields(list) {
		m[code] = true
	}
	return m
}()

// currencyProblem checks code, already upper case, and returns what is wrong
// with it, or "" for an active ISO 4217 code.
func currencyProblem(code string) string {
	if len(code) != 3 || strings.ContainsFunc(code, func(r rune) bool { return r < 'A' || r > 'Z' }) {
		return "must be a 3-letter ISO 4217 code such as EUR"
	}
	if !isoCurrencies[code] {
		return "must be an active ISO 4217 currency code such as EUR, USD or GBP; " + code + " is not one"
	}
	return ""
}

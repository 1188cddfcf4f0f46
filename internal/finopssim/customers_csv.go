package finopssim

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"strings"
)

// WriteCustomersCSV writes a large, realistic CSV entity file (UTF-8 BOM,
// CRLF, 15 columns; commas, quotes, quoted line breaks, non-ASCII and empty
// fields) with rows records, about 170 bytes each, and returns its columns.
// The conversion benchmarks use it.
func WriteCustomersCSV(bw *bufio.Writer, rows int) []string {
	cols := []string{"ACCOUNTNUM", "NAME", "CUSTGROUP", "CURRENCY", "ADDRESSSTREET", "ADDRESSCITY", "ADDRESSZIPCODE",
		"ADDRESSCOUNTRYREGIONID", "PHONE", "EMAIL", "CREDITLIMIT", "PAYMENTTERMS", "DELIVERYMODE", "NOTES", "MODIFIEDDATETIME"}
	bw.WriteString("\uFEFF" + strings.Join(cols, ",") + "\r\n")
	r := rand.New(rand.NewPCG(1, 2))
	names := []string{"Contoso Retail", "Fabrikam, Inc.", `The "Best" Shop`, "Müller & Söhne GmbH", "Société Générale d'Équipement", "Adventure Works", "北京贸易有限公司", "Alpine Ski House", "Coho Winery", "Tailspin Toys"}
	streets := []string{"1 Microsoft Way", "Hauptstraße 5", "12, Rue de la Paix", "Calle Mayor 3, 2ºB", "Apt 4\r\nBuilding C", ""}
	cities := []string{"Redmond", "München", "Paris", "Madrid", "Zürich", "Seattle", ""}
	notes := []string{"", "", "Preferred customer", "Call before delivery, gate code \"1234\"", "Line one\r\nLine two", "Überweisung nur per SEPA", "—"}
	fields := make([]string, len(cols))
	for i := 0; i < rows; i++ {
		fields[0] = fmt.Sprintf("US-%07d", i)
		fields[1] = names[r.IntN(len(names))]
		fields[2] = []string{"10", "20", "30", "Intercompany"}[r.IntN(4)]
		fields[3] = []string{"USD", "EUR", "GBP", "JPY"}[r.IntN(4)]
		fields[4] = streets[r.IntN(len(streets))]
		fields[5] = cities[r.IntN(len(cities))]
		fields[6] = fmt.Sprintf("%05d", r.IntN(99999))
		fields[7] = []string{"USA", "DEU", "FRA", "ESP", "CHE"}[r.IntN(5)]
		fields[8] = fmt.Sprintf("+1 425 555 %04d", r.IntN(10000))
		fields[9] = fmt.Sprintf("contact%d@example.com", r.IntN(100000))
		fields[10] = fmt.Sprintf("%d.%02d", r.IntN(1000000), r.IntN(100))
		fields[11] = []string{"Net30", "Net10", "COD", ""}[r.IntN(4)]
		fields[12] = []string{"Truck", "Air", "Parcel", ""}[r.IntN(4)]
		fields[13] = notes[r.IntN(len(notes))]
		fields[14] = fmt.Sprintf("2026-%02d-%02dT%02d:%02d:%02dZ", 1+r.IntN(12), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60))
		for j, v := range fields {
			if j > 0 {
				bw.WriteByte(',')
			}
			if strings.ContainsAny(v, ",\"\r\n") {
				bw.WriteString(`"` + strings.ReplaceAll(v, `"`, `""`) + `"`)
			} else {
				bw.WriteString(v)
			}
		}
		bw.WriteString("\r\n")
	}
	return cols
}

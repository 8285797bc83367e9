"""Printing certificates: HTML → PDF, 公印, PAdES signatures, public verification.

- `pdf`: WeasyPrint with the system's IPA fonts, kept warm between renders.
- `certificates`: `render_certificate(CertificateData)` for 住民票の写し, 印鑑登録証明書 and
  課税・非課税証明書 (templates in print/certificates/).
- `seal`: the demo 公印 image and turning any seal image black for print.
- `signing`: PAdES signatures with a municipality key; a demo CA for development.
- `verify`: the QR verification URL and what the public verify page may show.

The rules behind them (fees, 発行番号, tax years, paging) are in `app.domain.certificates`.
Import the submodules directly; importing this package loads nothing heavy.
"""

// The kit's demo: a table of live prices from usePriceStream. ?url=http://localhost:5021 (default: this origin)
// and ?symbols=BTCUSDT,ETHUSDT.
import { useState } from "react";
import { usePriceStream } from "./usePriceStream.js";

const params = new URLSearchParams(location.search);
const url = params.get("url") || undefined;
const format = new Intl.NumberFormat("en-US", { maximumFractionDigits: 8 });

export function App() {
  const [symbols] = useState(() => (params.get("symbols") || "BTCUSDT,ETHUSDT,SOLUSDT").split(","));
  const { state, prices, books, recovery } = usePriceStream(symbols, { url, streams: ["ticker", "book"] });
  return (
    <main>
      <h1>Live prices</h1>
      <p role="status">Connection: {state}{recovery ? ` (after reconnecting: ${summary(recovery)})` : ""}</p>
      <table>
        <thead><tr><th>Symbol</th><th>Price</th><th>24 h change</th><th>Bid</th><th>Ask</th></tr></thead>
        <tbody>
          {symbols.map((symbol) => (
            <tr key={symbol}>
              <td>{symbol}</td>
              <td>{prices[symbol] ? format.format(prices[symbol].price) : "…"}</td>
              <td>{prices[symbol] ? `${prices[symbol].changePercent.toFixed(2)} %` : ""}</td>
              <td>{books[symbol] ? format.format(books[symbol].bid) : ""}</td>
              <td>{books[symbol] ? format.format(books[symbol].ask) : ""}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </main>
  );
}

function summary({ recovered }) {
  const gaps = Object.entries(recovered).filter(([, ok]) => !ok).map(([channel]) => channel);
  return gaps.length ? `gap in ${gaps.join(", ")}` : "recovered";
}

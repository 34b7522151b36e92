// Package sampledata is the reference data of generated orders (Japanese names with their
// readings, towns with postal and telephone codes, products) and the helpers that keep a
// generated order consistent. The publisher's sample command and the reliability suite share it.
package sampledata

import (
	"math/rand/v2"

	"github.com/atodene-worker/atodene-worker/internal/events"
)

// Name is a family or given name: kanji, full-width katakana reading, romaji (for e-mails).
type Name struct{ Kanji, Kana, Romaji string }

// FamilyNames are common family names.
var FamilyNames = []Name{
	{"佐藤", "サトウ", "sato"}, {"鈴木", "スズキ", "suzuki"}, {"高橋", "タカハシ", "takahashi"}, {"田中", "タナカ", "tanaka"},
	{"伊藤", "イトウ", "ito"}, {"渡辺", "ワタナベ", "watanabe"}, {"山本", "ヤマモト", "yamamoto"}, {"中村", "ナカムラ", "nakamura"},
	{"小林", "コバヤシ", "kobayashi"}, {"加藤", "カトウ", "kato"}, {"吉田", "ヨシダ", "yoshida"}, {"山田", "ヤマダ", "yamada"},
	{"佐々木", "ササキ", "sasaki"}, {"山口", "ヤマグチ", "yamaguchi"}, {"松本", "マツモト", "matsumoto"}, {"井上", "イノウエ", "inoue"},
	{"木村", "キムラ", "kimura"}, {"林", "ハヤシ", "hayashi"}, {"斎藤", "サイトウ", "saito"}, {"清水", "シミズ", "shimizu"},
	{"山崎", "ヤマザキ", "yamazaki"}, {"森", "モリ", "mori"}, {"池田", "イケダ", "ikeda"}, {"橋本", "ハシモト", "hashimoto"},
	{"阿部", "アベ", "abe"}, {"石川", "イシカワ", "ishikawa"}, {"山下", "ヤマシタ", "yamashita"}, {"中島", "ナカジマ", "nakajima"},
	{"前田", "マエダ", "maeda"}, {"藤田", "フジタ", "fujita"}, {"小川", "オガワ", "ogawa"}, {"後藤", "ゴトウ", "goto"},
	{"岡田", "オカダ", "okada"}, {"長谷川", "ハセガワ", "hasegawa"}, {"村上", "ムラカミ", "murakami"}, {"近藤", "コンドウ", "kondo"},
	{"石井", "イシイ", "ishii"}, {"坂本", "サカモト", "sakamoto"}, {"遠藤", "エンドウ", "endo"}, {"青木", "アオキ", "aoki"},
}

// GivenNames are common given names.
var GivenNames = []Name{
	{"太郎", "タロウ", "taro"}, {"花子", "ハナコ", "hanako"}, {"翔太", "ショウタ", "shota"}, {"陽菜", "ヒナ", "hina"},
	{"大輔", "ダイスケ", "daisuke"}, {"美咲", "ミサキ", "misaki"}, {"健太", "ケンタ", "kenta"}, {"結衣", "ユイ", "yui"},
	{"拓也", "タクヤ", "takuya"}, {"さくら", "サクラ", "sakura"}, {"蓮", "レン", "ren"}, {"葵", "アオイ", "aoi"},
	{"悠斗", "ユウト", "yuto"}, {"陽子", "ヨウコ", "yoko"}, {"誠", "マコト", "makoto"}, {"直美", "ナオミ", "naomi"},
	{"和也", "カズヤ", "kazuya"}, {"恵子", "ケイコ", "keiko"}, {"隆", "タカシ", "takashi"}, {"由美", "ユミ", "yumi"},
	{"浩二", "コウジ", "koji"}, {"真由美", "マユミ", "mayumi"}, {"修", "オサム", "osamu"}, {"愛", "アイ", "ai"},
	{"大翔", "ヒロト", "hiroto"}, {"芽依", "メイ", "mei"}, {"湊", "ミナト", "minato"}, {"凛", "リン", "rin"},
	{"一郎", "イチロウ", "ichiro"}, {"智子", "トモコ", "tomoko"},
}

// Place is a town with its postal code, telephone area code and a shop's shipping fee there.
type Place struct {
	Pref, City, Town, Zip, Area string
	Shipping                    int64
}

// Address is the place's prefecture, city and town, without the block number.
func (p Place) Address() string { return p.Pref + p.City + p.Town }

// Places are towns across Japan.
var Places = []Place{
	{"東京都", "渋谷区", "神宮前", "150-0001", "03", 550},
	{"東京都", "新宿区", "西新宿", "160-0023", "03", 550},
	{"東京都", "世田谷区", "三軒茶屋", "154-0024", "03", 550},
	{"東京都", "杉並区", "阿佐谷南", "166-0004", "03", 550},
	{"東京都", "練馬区", "豊玉北", "176-0012", "03", 550},
	{"東京都", "品川区", "大崎", "141-0032", "03", 550},
	{"神奈川県", "横浜市西区", "みなとみらい", "220-0012", "045", 550},
	{"神奈川県", "川崎市中原区", "小杉町", "211-0063", "044", 550},
	{"神奈川県", "藤沢市", "鵠沼海岸", "251-0037", "0466", 550},
	{"埼玉県", "さいたま市大宮区", "桜木町", "330-0854", "048", 550},
	{"千葉県", "千葉市中央区", "富士見", "260-0015", "043", 550},
	{"千葉県", "船橋市", "本町", "273-0005", "047", 550},
	{"長野県", "松本市", "中央", "390-0811", "0263", 660},
	{"新潟県", "新潟市中央区", "万代", "950-0088", "025", 660},
	{"石川県", "金沢市", "広坂", "920-0962", "076", 660},
	{"静岡県", "静岡市葵区", "追手町", "420-0853", "054", 550},
	{"愛知県", "名古屋市中村区", "名駅", "450-0002", "052", 550},
	{"愛知県", "名古屋市中区", "栄", "460-0008", "052", 550},
	{"京都府", "京都市下京区", "東塩小路町", "600-8216", "075", 660},
	{"大阪府", "大阪市北区", "梅田", "530-0001", "06", 660},
	{"大阪府", "大阪市中央区", "難波", "542-0076", "06", 660},
	{"大阪府", "堺市堺区", "南瓦町", "590-0078", "072", 660},
	{"兵庫県", "神戸市中央区", "三宮町", "650-0021", "078", 660},
	{"岡山県", "岡山市北区", "駅元町", "700-0024", "086", 660},
	{"広島県", "広島市中区", "紙屋町", "730-0031", "082", 660},
	{"宮城県", "仙台市青葉区", "中央", "980-0021", "022", 660},
	{"福岡県", "福岡市博多区", "博多駅前", "812-0011", "092", 770},
	{"福岡県", "福岡市中央区", "天神", "810-0001", "092", 770},
	{"熊本県", "熊本市中央区", "手取本町", "860-0806", "096", 770},
	{"北海道", "札幌市中央区", "大通西", "060-0042", "011", 1100},
	{"沖縄県", "那覇市", "久茂地", "900-0015", "098", 1320},
}

// Buildings, Companies and Departments fill the optional parts of an address.
var Buildings = []string{"パークハイツ", "グランメゾン", "コーポ若葉", "サンライズ", "メゾン桜", "レジデンス緑ヶ丘", "ハイム白樺"}
var Companies = []string{"株式会社さくら物産", "有限会社山田商店", "合同会社ミナト企画", "株式会社青葉システム", "東和工業株式会社"}
var Departments = []string{"総務部", "経理課", "営業部", "人事部", "情報システム課"}

// Product is an item a shop sells, with its unit price (yen, tax included).
type Product struct {
	Name  string
	Price int64
}

// Products are ordinary products, none dearer than 19,800 yen.
var Products = []Product{
	{"緑茶ティーバッグ 50包", 1200}, {"静岡県産 深蒸し茶 100g×3袋", 2700}, {"有機ほうじ茶 100g", 864},
	{"魚沼産コシヒカリ 5kg", 3980}, {"北海道産 じゃがいも 5kg", 2480}, {"讃岐うどん 10人前", 1980},
	{"博多明太子 300g", 3240}, {"信州りんごジュース 1L×6本", 3600}, {"鹿児島県産 黒豚しゃぶしゃぶセット", 5400},
	{"京都 抹茶ロールケーキ", 2160}, {"天然水 2L×6本", 1080}, {"純米吟醸酒 720ml", 2640},
	{"今治タオル フェイスタオル 3枚組", 2750}, {"南部鉄器 急須 0.6L", 6600}, {"有田焼 小皿 5枚セット", 4400},
	{"備前焼 マグカップ", 3300}, {"国産ひのき まな板", 3520}, {"土鍋 8号", 4180},
	{"真空断熱タンブラー 450ml", 2178}, {"綿100% パジャマ Mサイズ", 4980}, {"撥水 折りたたみ傘", 2970},
	{"防災リュック 18点セット", 8800}, {"LEDデスクライト", 5480}, {"ワイヤレスイヤホン", 7980},
	{"モバイルバッテリー 10000mAh", 3280}, {"電動歯ブラシ 替えブラシ 4本", 1650}, {"超音波式 加湿器", 6980},
	{"羽毛布団 シングル", 19800}, {"ドリップコーヒー 30袋", 1580}, {"入浴剤 詰め合わせ 12包", 1320},
}

// ExpensiveProducts cost more than the sandbox's 55,000 yen limit on their own.
var ExpensiveProducts = []Product{
	{"ロボット掃除機", 59800}, {"4K液晶テレビ 43型", 64800}, {"ドラム式洗濯乾燥機", 168000},
	{"一眼レフカメラ レンズキット", 84800}, {"電動アシスト自転車 26インチ", 98000}, {"ノートパソコン 14インチ", 128000},
	{"冷蔵庫 300L", 89800}, {"マッサージチェア", 148000},
}

// ProductsUpTo returns the products whose price is at most max.
func ProductsUpTo(max int64) []Product {
	var out []Product
	for _, p := range Products {
		if p.Price <= max {
			out = append(out, p)
		}
	}
	return out
}

// Pick returns a random element of xs.
func Pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

// Sum is Σ(unit_price × quantity) of items.
func Sum(items []events.Item) int64 {
	var t int64
	for _, it := range items {
		t += it.UnitPrice * it.Quantity
	}
	return t
}

// Bill sets billed_amount from the order's invariant, Σ items + shipping_fee + fee − discount
// (docs/events.md#ordercreated-and-orderupdated-eventsdecodeorder-ordervalidate).
func Bill(o *events.Order) {
	billed := Sum(o.Items) + o.ShippingFee + o.Fee - o.Discount
	o.BilledAmount = &billed
}

<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>
<qgis simplifyAlgorithm="0" labelsEnabled="0" readOnly="0" maxScale="0" simplifyDrawingTol="1" version="3.22.16-Białowieża" simplifyMaxScale="1" styleCategories="AllStyleCategories" hasScaleBasedVisibilityFlag="0" simplifyDrawingHints="1" minScale="100000000" symbologyReferenceScale="-1" simplifyLocal="1">
  <flags>
    <Identifiable>1</Identifiable>
    <Removable>1</Removable>
    <Searchable>1</Searchable>
    <Private>0</Private>
  </flags>
  <temporal fixedDuration="0" endExpression="" startExpression="" mode="0" limitMode="0" durationField="" accumulate="0" enabled="0" endField="" durationUnit="min" startField="">
    <fixedRange>
      <start></start>
      <end></end>
    </fixedRange>
  </temporal>
  <renderer-v2 symbollevels="0" referencescale="-1" forceraster="0" enableorderby="0" type="singleSymbol">
    <symbols>
      <symbol clip_to_extent="1" force_rhr="0" alpha="1" type="marker" name="0">
        <data_defined_properties>
          <Option type="Map">
            <Option value="" type="QString" name="name"/>
            <Option name="properties"/>
            <Option value="collection" type="QString" name="type"/>
          </Option>
        </data_defined_properties>
        <layer locked="0" class="SimpleMarker" enabled="1" pass="0">
          <Option type="Map">
            <Option value="0" type="QString" name="angle"/>
            <Option value="square" type="QString" name="cap_style"/>
            <Option value="228,87,46,220" type="QString" name="color"/>
            <Option value="1" type="QString" name="horizontal_anchor_point"/>
            <Option value="bevel" type="QString" name="joinstyle"/>
            <Option value="circle" type="QString" name="name"/>
            <Option value="0,0" type="QString" name="offset"/>
            <Option value="3x:0,0,0,0,0,0" type="QString" name="offset_map_unit_scale"/>
            <Option value="MM" type="QString" name="offset_unit"/>
            <Option value="40,20,10,255" type="QString" name="outline_color"/>
            <Option value="solid" type="QString" name="outline_style"/>
            <Option value="0.3" type="QString" name="outline_width"/>
            <Option value="3x:0,0,0,0,0,0" type="QString" name="outline_width_map_unit_scale"/>
            <Option value="MM" type="QString" name="outline_width_unit"/>
            <Option value="diameter" type="QString" name="scale_method"/>
            <Option value="2" type="QString" name="size"/>
            <Option value="3x:0,0,0,0,0,0" type="QString" name="size_map_unit_scale"/>
            <Option value="MM" type="QString" name="size_unit"/>
            <Option value="1" type="QString" name="vertical_anchor_point"/>
          </Option>
          <prop k="angle" v="0"/>
          <prop k="cap_style" v="square"/>
          <prop k="color" v="228,87,46,220"/>
          <prop k="horizontal_anchor_point" v="1"/>
          <prop k="joinstyle" v="bevel"/>
          <prop k="name" v="circle"/>
          <prop k="offset" v="0,0"/>
          <prop k="offset_map_unit_scale" v="3x:0,0,0,0,0,0"/>
          <prop k="offset_unit" v="MM"/>
          <prop k="outline_color" v="40,20,10,255"/>
          <prop k="outline_style" v="solid"/>
          <prop k="outline_width" v="0.3"/>
          <prop k="outline_width_map_unit_scale" v="3x:0,0,0,0,0,0"/>
          <prop k="outline_width_unit" v="MM"/>
          <prop k="scale_method" v="diameter"/>
          <prop k="size" v="2"/>
          <prop k="size_map_unit_scale" v="3x:0,0,0,0,0,0"/>
          <prop k="size_unit" v="MM"/>
          <prop k="vertical_anchor_point" v="1"/>
          <data_defined_properties>
            <Option type="Map">
              <Option value="" type="QString" name="name"/>
              <Option type="Map" name="properties">
                <Option type="Map" name="fillColor">
                  <Option value="true" type="bool" name="active"/>
                  <Option value="ramp_color('Magma', scale_linear(&quot;probability&quot;, 0, maximum(&quot;probability&quot;), 0.25, 0.95))" type="QString" name="expression"/>
                  <Option value="3" type="int" name="type"/>
                </Option>
                <Option type="Map" name="size">
                  <Option value="true" type="bool" name="active"/>
                  <Option value="scale_exp(&quot;probability&quot;, 0, maximum(&quot;probability&quot;), 1.8, 7.5, 0.6)" type="QString" name="expression"/>
                  <Option value="3" type="int" name="type"/>
                </Option>
              </Option>
              <Option value="collection" type="QString" name="type"/>
            </Option>
          </data_defined_properties>
        </layer>
      </symbol>
    </symbols>
    <rotation/>
    <sizescale/>
  </renderer-v2>
  <customproperties>
    <Option/>
  </customproperties>
  <blendMode>0</blendMode>
  <featureBlendMode>0</featureBlendMode>
  <layerOpacity>1</layerOpacity>
  <geometryOptions removeDuplicateNodes="0" geometryPrecision="0">
    <activeChecks type="StringList">
      <Option value="" type="QString"/>
    </activeChecks>
    <checkConfiguration/>
  </geometryOptions>
  <legend showLabelLegend="0" type="default-vector"/>
  <referencedLayers/>
  <fieldConfiguration>
    <field configurationFlags="None" name="photo">
      <editWidget type="">
        <config>
          <Option/>
        </config>
      </editWidget>
    </field>
    <field configurationFlags="None" name="query">
      <editWidget type="">
        <config>
          <Option/>
        </config>
      </editWidget>
    </field>
    <field configurationFlags="None" name="rank">
      <editWidget type="">
        <config>
          <Option/>
        </config>
      </editWidget>
    </field>
    <field configurationFlags="None" name="probability">
      <editWidget type="">
        <config>
          <Option/>
        </config>
      </editWidget>
    </field>
    <field configurationFlags="None" name="lat">
      <editWidget type="">
        <config>
          <Option/>
        </config>
      </editWidget>
    </field>
    <field configurationFlags="None" name="lon">
      <editWidget type="">
        <config>
          <Option/>
        </config>
      </editWidget>
    </field>
    <field configurationFlags="None" name="gallery_index">
      <editWidget type="">
        <config>
          <Option/>
        </config>
      </editWidget>
    </field>
    <field configurationFlags="None" name="exif_lat">
      <editWidget type="">
        <config>
          <Option/>
        </config>
      </editWidget>
    </field>
    <field configurationFlags="None" name="exif_lon">
      <editWidget type="">
        <config>
          <Option/>
        </config>
      </editWidget>
    </field>
    <field configurationFlags="None" name="error_km">
      <editWidget type="">
        <config>
          <Option/>
        </config>
      </editWidget>
    </field>
  </fieldConfiguration>
  <aliases>
    <alias index="0" name="" field="photo"/>
    <alias index="1" name="" field="query"/>
    <alias index="2" name="" field="rank"/>
    <alias index="3" name="" field="probability"/>
    <alias index="4" name="" field="lat"/>
    <alias index="5" name="" field="lon"/>
    <alias index="6" name="" field="gallery_index"/>
    <alias index="7" name="" field="exif_lat"/>
    <alias index="8" name="" field="exif_lon"/>
    <alias index="9" name="" field="error_km"/>
  </aliases>
  <defaults>
    <default expression="" applyOnUpdate="0" field="photo"/>
    <default expression="" applyOnUpdate="0" field="query"/>
    <default expression="" applyOnUpdate="0" field="rank"/>
    <default expression="" applyOnUpdate="0" field="probability"/>
    <default expression="" applyOnUpdate="0" field="lat"/>
    <default expression="" applyOnUpdate="0" field="lon"/>
    <default expression="" applyOnUpdate="0" field="gallery_index"/>
    <default expression="" applyOnUpdate="0" field="exif_lat"/>
    <default expression="" applyOnUpdate="0" field="exif_lon"/>
    <default expression="" applyOnUpdate="0" field="error_km"/>
  </defaults>
  <constraints>
    <constraint notnull_strength="0" constraints="0" unique_strength="0" exp_strength="0" field="photo"/>
    <constraint notnull_strength="0" constraints="0" unique_strength="0" exp_strength="0" field="query"/>
    <constraint notnull_strength="0" constraints="0" unique_strength="0" exp_strength="0" field="rank"/>
    <constraint notnull_strength="0" constraints="0" unique_strength="0" exp_strength="0" field="probability"/>
    <constraint notnull_strength="0" constraints="0" unique_strength="0" exp_strength="0" field="lat"/>
    <constraint notnull_strength="0" constraints="0" unique_strength="0" exp_strength="0" field="lon"/>
    <constraint notnull_strength="0" constraints="0" unique_strength="0" exp_strength="0" field="gallery_index"/>
    <constraint notnull_strength="0" constraints="0" unique_strength="0" exp_strength="0" field="exif_lat"/>
    <constraint notnull_strength="0" constraints="0" unique_strength="0" exp_strength="0" field="exif_lon"/>
    <constraint notnull_strength="0" constraints="0" unique_strength="0" exp_strength="0" field="error_km"/>
  </constraints>
  <constraintExpressions>
    <constraint exp="" desc="" field="photo"/>
    <constraint exp="" desc="" field="query"/>
    <constraint exp="" desc="" field="rank"/>
    <constraint exp="" desc="" field="probability"/>
    <constraint exp="" desc="" field="lat"/>
    <constraint exp="" desc="" field="lon"/>
    <constraint exp="" desc="" field="gallery_index"/>
    <constraint exp="" desc="" field="exif_lat"/>
    <constraint exp="" desc="" field="exif_lon"/>
    <constraint exp="" desc="" field="error_km"/>
  </constraintExpressions>
  <expressionfields/>
  <attributeactions/>
  <attributetableconfig actionWidgetStyle="dropDown" sortOrder="0" sortExpression="">
    <columns/>
  </attributetableconfig>
  <conditionalstyles>
    <rowstyles/>
    <fieldstyles/>
  </conditionalstyles>
  <storedexpressions/>
  <editform tolerant="1"></editform>
  <editforminit/>
  <editforminitcodesource>0</editforminitcodesource>
  <editforminitfilepath></editforminitfilepath>
  <editforminitcode><![CDATA[]]></editforminitcode>
  <featformsuppress>0</featformsuppress>
  <editorlayout>generatedlayout</editorlayout>
  <editable/>
  <labelOnTop/>
  <reuseLastValue/>
  <dataDefinedFieldProperties/>
  <widgets/>
  <previewExpression>coalesce("photo", "query") || ' #' || "rank"</previewExpression>
  <mapTip>&lt;div style="max-width:340px">
[% CASE WHEN "photo" IS NOT NULL THEN
'&lt;img src="file:///' || CASE WHEN regexp_match("photo", '^(/|[A-Za-z]:)') THEN "photo"
ELSE @project_home || '/' || "photo" END || '" style="max-width:320px;max-height:240px">&lt;br>' ELSE '' END %]
&lt;b>[% coalesce("photo", "query") %]&lt;/b>&lt;br>
rank [% "rank" %] &amp;middot; p = [% format_number("probability", 4) %]&lt;br>
[% format_number("lat", 5) %], [% format_number("lon", 5) %]
[% CASE WHEN "error_km" IS NOT NULL THEN '&lt;br>EXIF GPS is ' || format_number("error_km", 1) || ' km away' ELSE '' END %]
&lt;/div></mapTip>
  <layerGeometryType>0</layerGeometryType>
</qgis>
